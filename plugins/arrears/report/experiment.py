"""Champion/challenger read-out (CONTRACT §5), per arm, from the real record as of a date.

- accounts: those decided under the experiment that entered it in arrears (a stage other than
  current on their first decision under it); entry = that first cycle date;
- cure rate: share of them that became current or left the extract within 30 days of entry
  (accounts entered less than 30 days ago count with what happened so far: `matured` says how
  many had their full 30 days);
- amount collected: payments paid on or after entry; messages per account: messages delivered
  (outbox `sent`) since entry; opt-outs: accounts whose extract later lists an opted-out channel
  they had not opted out of at entry; disputes opened since entry (case events);
- stage roll rates over the experiment's decisions; the cure-rate difference (challenger minus
  champion) with Newcombe's hybrid score 95 % interval.
"""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Engine, text

from arrears.db.values import as_date, split_list
from arrears.db import sql
from arrears.money import format_fen
from arrears.policy.experiment import ARMS, CHALLENGER, CHAMPION
from arrears.report.intervals import newcombe
from arrears.report.roll_rates import FROM_STAGES, OUTCOMES, rates, transitions

CURE_DAYS = 30


class UnknownExperiment(LookupError):
    pass


def experiment_ids(engine: Engine, cycle_date: date) -> list[str]:
    """The experiments D's decisions were made under (usually none or one)."""
    with engine.connect() as conn:
        return sorted(e for (e,) in conn.execute(text(
            "SELECT DISTINCT experiment_id FROM decisions WHERE cycle_date = :d"
            " AND experiment_id <> ''"), {"d": cycle_date}))


def experiment_report(engine: Engine, experiment_id: str, as_of: date | None = None) -> dict:
    with engine.connect() as conn:
        params = {"e": experiment_id, "as_of": as_of or date(9999, 12, 31)}
        members: dict[str, tuple[str, date, str]] = {}   # account -> (arm, entered, stage then)
        versions: dict[str, set[str]] = {a: set() for a in ARMS}
        for account, arm, day, stage, version in conn.execute(
                sql("report/experiment_members.sql", conn.dialect.name), params):
            versions.setdefault(arm, set()).add(version)
            if account not in members:
                members[account] = (arm, as_date(day), stage)
        if not members:
            raise UnknownExperiment(f"no decision was made under experiment {experiment_id!r}"
                                    + (f" by {as_of}" if as_of else ""))
        start = min(m[1] for m in members.values())
        end = as_date(conn.execute(text(
            "SELECT MAX(cycle_date) FROM decisions WHERE experiment_id = :e AND replay = 0"
            " AND cycle_date <= :as_of"), params).scalar())
        window = {"start": start, "end": end}
        cohort = {a: m for a, m in members.items() if m[2] != "current"}
        days = sorted(as_date(d) for (d,) in conn.execute(text(
            "SELECT DISTINCT cycle_date FROM decisions WHERE replay = 0 AND cycle_date >= :start"
            " AND cycle_date <= :end"), window))
        present: dict[str, dict[date, str]] = {}
        for account, day, stage in conn.execute(
                sql("report/experiment_days.sql", conn.dialect.name), {**params, **window}):
            if account in cohort:
                present.setdefault(account, {})[as_date(day)] = stage
        paid: dict[str, int] = {}
        for account, paid_on, fen in conn.execute(
                sql("report/experiment_payments.sql", conn.dialect.name), {**params, **window}):
            if account in cohort and as_date(paid_on) >= cohort[account][1]:
                paid[account] = paid.get(account, 0) + fen
        sent: dict[str, int] = {}
        for account, day, n in conn.execute(
                sql("report/experiment_messages.sql", conn.dialect.name), {**params, **window}):
            if account in cohort and as_date(day) >= cohort[account][1]:
                sent[account] = sent.get(account, 0) + n
        opted: dict[str, dict[date, frozenset]] = {}
        for account, day, opt_out in conn.execute(
                sql("report/experiment_opt_outs.sql", conn.dialect.name), {**params, **window}):
            if account in cohort:
                opted.setdefault(account, {})[as_date(day)] = split_list(opt_out)
        disputes: set[str] = set()
        for account, effective in conn.execute(
                sql("report/experiment_disputes.sql", conn.dialect.name), {**params, **window}):
            if account in cohort and as_date(effective) >= cohort[account][1]:
                disputes.add(account)
        rolls = transitions(conn, start, end, experiment=experiment_id)

    arms = {arm: {"accounts": 0, "matured": 0, "cured": 0, "collected_fen": 0, "messages": 0,
                  "opt_outs": 0, "disputes_opened": 0} for arm in ARMS}
    for account, (arm, entered, _) in cohort.items():
        a = arms.setdefault(arm, dict.fromkeys(arms[CHAMPION], 0))
        a["accounts"] += 1
        horizon = entered + timedelta(days=CURE_DAYS)
        a["matured"] += horizon <= end
        mine = present.get(account, {})
        if any(d > entered and (mine.get(d, "gone") in ("current", "gone"))
               for d in days if d <= horizon):
            a["cured"] += 1
        a["collected_fen"] += paid.get(account, 0)
        a["messages"] += sent.get(account, 0)
        seen = opted.get(account, {})
        at_entry = seen.get(entered, frozenset())
        if any(d > entered and channels - at_entry for d, channels in seen.items()):
            a["opt_outs"] += 1
        a["disputes_opened"] += account in disputes
    out_arms = {}
    for arm, a in arms.items():
        n = a["accounts"]
        out_arms[arm] = {
            "accounts": n, "matured": a["matured"], "cured": a["cured"],
            "cure_rate": round(a["cured"] / n, 4) if n else None,
            "collected": format_fen(a["collected_fen"]),
            "messages_per_account": round(a["messages"] / n, 2) if n else None,
            "opt_outs": a["opt_outs"], "disputes_opened": a["disputes_opened"],
            "policy_versions": sorted(versions.get(arm, ())),
            "roll_rates": rates(rolls.get(arm) or _no_rolls()),
        }
    ch, cp = arms[CHALLENGER], arms[CHAMPION]
    diff = None
    if ch["accounts"] and cp["accounts"]:
        d, lo, hi = newcombe(ch["cured"], ch["accounts"], cp["cured"], cp["accounts"])
        diff = {"challenger_minus_champion": round(d, 4), "ci95": [round(lo, 4), round(hi, 4)],
                "method": "Newcombe hybrid score interval (method 10, from Wilson intervals)"}
    return {"experiment_id": experiment_id, "from": start.isoformat(), "to": end.isoformat(),
            "cure_days": CURE_DAYS, "arms": out_arms, "cure_rate_difference": diff}


def _no_rolls() -> dict:
    return {s: dict.fromkeys(OUTCOMES, 0) for s in FROM_STAGES}


def as_text(report: dict) -> str:
    lines = [f"experiment {report['experiment_id']}: {report['from']} to {report['to']} "
             f"(cure = current or gone within {report['cure_days']} days of entry)"]
    header = f"{'':24}" + "".join(f"{arm:>14}" for arm in report["arms"])
    lines.append(header)
    for key in ("policy_versions", "accounts", "matured", "cure_rate", "collected",
                "messages_per_account", "opt_outs", "disputes_opened"):
        cells = []
        for arm in report["arms"].values():
            value = arm[key]
            cells.append(",".join(value) if isinstance(value, list) else
                         ("-" if value is None else str(value)))
        lines.append(f"{key.replace('_', ' '):24}" + "".join(f"{c:>14}" for c in cells))
    for arm, values in report["arms"].items():
        for stage, r in values["roll_rates"].items():
            shares = ", ".join(f"{o} {r[o]:.1%}" for o in OUTCOMES if r[o] is not None)
            lines.append(f"roll {arm} {stage} ({r['accounts']} account-days): {shares or '-'}")
    diff = report["cure_rate_difference"]
    if diff:
        lo, hi = diff["ci95"]
        lines.append(f"cure rate difference (challenger - champion): "
                     f"{diff['challenger_minus_champion']:+.4f}, 95 % CI [{lo:+.4f}, {hi:+.4f}] "
                     f"({diff['method']})")
    else:
        lines.append("cure rate difference: needs accounts in both arms")
    return "\n".join(lines)
