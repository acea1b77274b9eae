"""The what-if's files under ``<outbox>/whatif/<id>/``: summary.json, changes.csv, report.html.

Deterministic for the same record and policy (no timestamps; run time goes to the log only), so a
rerun of the same what-if gives the same bytes.
"""
from __future__ import annotations

import base64
import io
import json

from jinja2 import Environment, FileSystemLoader, select_autoescape

from arrears.model import ACTIONS, HOLDS, STAGES
from arrears.money import format_fen
from arrears.outbox_files import whatif_folder, write_file
from arrears.paths import TEMPLATES_DIR
from arrears.spreadsheet import csv_bytes
from arrears.whatif.run import DayResult, WhatIfResult

CHANGE_COLUMNS = ("cycle_date", "account_id", "real_actions", "whatif_actions")
# The actions the report plots day by day (messages are email + sms).
PLOTTED = ("messages", "lawyer_letter", "credit_report", "disconnection_notice", "call_list",
           "field_visit")
MESSAGE_ACTIONS = ("email", "sms")


def counts(rows: list[tuple] | None) -> dict | None:
    """Counts by stage, action and hold (every name present) of one side of one date."""
    if rows is None:
        return None
    by_stage = dict.fromkeys(STAGES, 0)
    by_action = dict.fromkeys(ACTIONS, 0)
    by_hold = dict.fromkeys(HOLDS, 0)
    for _, stage, actions, holds, _ in rows:
        by_stage[stage] = by_stage.get(stage, 0) + 1
        for a in filter(None, actions.split(";")):
            by_action[a] = by_action.get(a, 0) + 1
        for h in filter(None, holds.split(";")):
            by_hold[h] = by_hold.get(h, 0) + 1
    return {"accounts": len(rows), "by_stage": by_stage, "by_action": by_action, "by_hold": by_hold}


def changes(day: DayResult) -> list[tuple[str, str, str, str]]:
    """Accounts whose actions differ (an account on one side only counts as a change)."""
    real = {r[0]: r[2] for r in day.real or ()}
    mine = {r[0]: r[2] for r in day.whatif}
    return [(day.cycle_date.isoformat(), a, real.get(a, ""), mine.get(a, ""))
            for a in sorted(real.keys() | mine.keys()) if real.get(a) != mine.get(a)]


def _delta(real: dict, whatif: dict) -> dict:
    return {name: whatif.get(name, 0) - real.get(name, 0) for name in whatif}


def build_summary(result: WhatIfResult) -> dict:
    dates, total_real, total_whatif = [], dict.fromkeys(ACTIONS, 0), dict.fromkeys(ACTIONS, 0)
    changed = 0
    for day in result.days:
        real, mine = counts(day.real), counts(day.whatif)
        n = len(changes(day))
        changed += n
        for a in ACTIONS:
            total_whatif[a] += mine["by_action"][a]
            total_real[a] += (real or {"by_action": {}})["by_action"].get(a, 0)
        dates.append({"cycle_date": day.cycle_date.isoformat(), "real": real, "whatif": mine,
                      "changed_accounts": n,
                      "delta_by_action": _delta(real["by_action"], mine["by_action"]) if real else None})
    costs = dict(result.policy.unit_costs)
    cost = {a: {"unit": format_fen(costs[a]), "real": format_fen(costs[a] * total_real[a]),
                "whatif": format_fen(costs[a] * total_whatif[a]),
                "delta": format_fen(costs[a] * (total_whatif[a] - total_real[a]))}
            for a in ACTIONS if a in costs}
    return {
        "id": result.whatif_id, "portfolio": result.portfolio,
        "policy_version": result.policy.version, "real_policy_versions": result.real_versions,
        "from": result.date_from.isoformat(), "to": result.date_to.isoformat(),
        "replayed_dates": [d.cycle_date.isoformat() for d in result.days],
        "missing_extracts": [d.isoformat() for d in result.missing],
        "changed_rows": changed,
        "totals": {"real": total_real, "whatif": total_whatif,
                   "delta": _delta(total_real, total_whatif)},
        "costs": cost,
        "seeded": result.seeded, "not_seeded": result.not_seeded,
        "delivery_model": "messages, letters, reports and notices the what-if decides count as "
                          "delivered, except a message whose real twin (same date, account and "
                          "channel) failed for good; no order is released (that needs a "
                          "supervisor's approval)",
        "dates": dates,
    }


def _series(summary: dict, side: str, action: str) -> list[int]:
    out = []
    for day in summary["dates"]:
        counted = day[side]
        if counted is None:
            out.append(0)
            continue
        acts = counted["by_action"]
        out.append(sum(acts[a] for a in MESSAGE_ACTIONS) if action == "messages" else acts[action])
    return out


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plots(summary: dict) -> dict[str, str]:
    """Base64 PNGs: actions per day real vs what-if; added/removed per action; costs."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    days = [d["cycle_date"][5:] for d in summary["dates"]]
    fig = Figure(figsize=(10, 5.2), dpi=100)
    axes = fig.subplots(2, 3).ravel()
    for axis, action in zip(axes, PLOTTED):
        axis.plot(days, _series(summary, "real", action), marker="o", ms=3, label="real",
                  color="#4c72b0")
        axis.plot(days, _series(summary, "whatif", action), marker="s", ms=3, label="what-if",
                  color="#dd8452", linestyle="--")
        axis.set_title(action.replace("_", " "), fontsize=9)
        axis.tick_params(labelsize=7)
        axis.tick_params(axis="x", labelrotation=45)
    step = max(1, len(days) // 8)  # a readable axis over a month of dates
    for axis in axes:
        axis.set_xticks(range(0, len(days), step), days[::step])
    axes[0].legend(fontsize=7)
    fig.suptitle("Actions per day: real record vs what-if", fontsize=10)
    fig.tight_layout()
    out = {"per_day": _png(fig)}

    delta = summary["totals"]["delta"]
    fig = Figure(figsize=(8, 3), dpi=100)
    axis = fig.subplots()
    names = list(ACTIONS)
    axis.bar(names, [delta[a] for a in names],
             color=["#55a868" if delta[a] >= 0 else "#c44e52" for a in names])
    axis.axhline(0, color="#444", linewidth=0.8)
    axis.set_title("Added (+) and removed (-) over the period, by action", fontsize=10)
    axis.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    out["delta"] = _png(fig)

    if summary["costs"]:
        fig = Figure(figsize=(8, 3), dpi=100)
        axis = fig.subplots()
        names = list(summary["costs"])
        xs = range(len(names))
        axis.bar([x - 0.2 for x in xs], [float(summary["costs"][a]["real"]) for a in names],
                 width=0.4, label="real", color="#4c72b0")
        axis.bar([x + 0.2 for x in xs], [float(summary["costs"][a]["whatif"]) for a in names],
                 width=0.4, label="what-if", color="#dd8452")
        axis.set_xticks(list(xs), names, rotation=30, fontsize=8)
        axis.set_title("Cost over the period (CNY, the policy's unit costs)", fontsize=10)
        axis.legend(fontsize=8)
        fig.tight_layout()
        out["costs"] = _png(fig)
    return out


def write_outputs(result: WhatIfResult, outbox, sample: int = 200):
    """The files in ``<outbox>/whatif/<id>/``; returns that folder."""
    folder = whatif_folder(outbox, result.whatif_id)
    summary = build_summary(result)
    rows = [row for day in result.days for row in changes(day)]
    write_file(folder / "changes.csv", csv_bytes(CHANGE_COLUMNS, rows))
    write_file(folder / "summary.json", (json.dumps(summary, ensure_ascii=False, indent=2,
                                                      sort_keys=True) + "\n").encode("utf-8"))
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR / "report"),
                      autoescape=select_autoescape(["html"]), keep_trailing_newline=True)
    html = env.get_template("whatif_report.html").render(
        s=summary, plots=plots(summary), actions=ACTIONS, changes=rows[:sample],
        more=max(0, len(rows) - sample))
    write_file(folder / "report.html", html.encode("utf-8"))
    return folder
