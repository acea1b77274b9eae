"""Roll rates (CONTRACT §5): of the accounts in a stage on one cycle date, the share that on the
next cycle date moved on to the next stage, stayed, cured (became current or left the extract),
or rolled back to an earlier stage (a part payment). Counted over account-days: every pair of
consecutive cycle dates whose later date lies in the period adds its accounts.

The daily report's period is month to date: pairs whose later date lies in D's month up to D.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, Engine

from arrears.db import sql
from arrears.model import STAGES

OUTCOMES = ("moved_on", "stayed", "cured", "rolled_back")
FROM_STAGES = tuple(s for s in STAGES if s != "current")


def _outcome(stage: str, after: str) -> str:
    if after in ("current", "gone"):
        return "cured"
    step = STAGES.index(after) - STAGES.index(stage)
    return "stayed" if step == 0 else ("moved_on" if step > 0 else "rolled_back")


def transitions(conn: Connection, start: date, end: date,
                experiment: str | None = None) -> dict[str, dict[str, dict[str, int]]]:
    """arm -> from-stage -> outcome -> account-days ('' is the arm of decisions outside any
    experiment)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for arm, stage, after, n in conn.execute(sql("report/roll_rates.sql", conn.dialect.name),
                                             {"d": end, "start": start, "experiment": experiment}):
        cell = out.setdefault(arm, {s: dict.fromkeys(OUTCOMES, 0) for s in FROM_STAGES})
        cell[stage][_outcome(stage, after)] += n
    return out


def merge_arms(by_arm: dict) -> dict[str, dict[str, int]]:
    total = {s: dict.fromkeys(OUTCOMES, 0) for s in FROM_STAGES}
    for stages in by_arm.values():
        for stage, counts in stages.items():
            for outcome, n in counts.items():
                total[stage][outcome] += n
    return total


def rates(counts: dict[str, dict[str, int]]) -> dict[str, dict]:
    """from-stage -> accounts (account-days) and each outcome's share (4 decimals; None when no
    account was in the stage). Escalation has no next stage: its moved_on stays 0."""
    out = {}
    for stage, c in counts.items():
        n = sum(c.values())
        out[stage] = {"accounts": n, **{o: (round(c[o] / n, 4) if n else None) for o in OUTCOMES}}
    return out


def month_to_date(engine: Engine, cycle_date: date) -> dict[str, dict]:
    with engine.connect() as conn:
        return rates(merge_arms(transitions(conn, cycle_date.replace(day=1), cycle_date)))


def roll_rates_png(by_stage: dict[str, dict], title: str) -> bytes:
    """Stacked shares per from-stage; deterministic bytes for the same numbers."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    colours = {"moved_on": "#c44e52", "stayed": "#dd8452", "cured": "#55a868",
               "rolled_back": "#4c72b0"}
    stages = list(by_stage)
    fig = Figure(figsize=(8, 3), dpi=100)
    axis = fig.subplots()
    left = [0.0] * len(stages)
    for outcome in OUTCOMES:
        shares = [by_stage[s][outcome] or 0.0 for s in stages]
        axis.barh(stages, shares, left=left, color=colours[outcome], label=outcome.replace("_", " "))
        left = [a + b for a, b in zip(left, shares)]
    axis.set_xlim(0, 1)
    axis.invert_yaxis()
    axis.set_xlabel("share of account-days")
    axis.set_title(title, fontsize=10, pad=24)
    axis.legend(fontsize=7, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
