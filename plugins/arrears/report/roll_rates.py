"""Roll rates (CONTRACT §5): of the accounts in a stage on one cycle date, the share that on the
next cycle date moved on to the next stage, stayed, cured (became current or left the extract),
or rolled back to an earlier stage (a part payment). Counted over account-days: every pair of
consecutive cycle dates whose later date lies in the period adds its accounts.

The daily report's period is month to date: pairs whose later date lies in D's month up to D.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, Engine, text

from arrears.db.values import as_date
from arrears.db import sql
from arrears.model import STAGES

OUTCOMES = ("moved_on", "stayed", "cured", "rolled_back")
FROM_STAGES = tuple(s for s in STAGES if s != "current")


def _outcome(stage: str, after: str) -> str:
    if after in ("current", "gone"):
        return "cured"
    step = STAGES.index(after) - STAGES.index(stage)
    return "stayed" if step == 0 else ("moved_on" if step > 0 else "rolled_back")


def day_transitions(conn: Connection, day: date) -> list[tuple]:
    """(experiment_id, arm, stage, next_stage, accounts) into ``day`` from the date before it."""
    return [tuple(r) for r in conn.execute(sql("report/roll_day.sql", conn.dialect.name),
                                           {"d": day})]


def record_day(conn: Connection, day: date) -> None:
    """Count ``day``'s transitions (publish does, for D and, after a rerun of a past D, for the
    date after it, whose pair changed)."""
    previous = conn.execute(text("SELECT MAX(cycle_date) FROM decisions WHERE replay = 0"
                                 " AND cycle_date < :d"), {"d": day}).scalar()
    rows = day_transitions(conn, day)
    conn.execute(text("DELETE FROM roll_transitions WHERE cycle_date = :d"), {"d": day})
    conn.execute(text("DELETE FROM roll_days WHERE cycle_date = :d"), {"d": day})
    conn.execute(text("INSERT INTO roll_days (cycle_date, previous_cycle) VALUES (:d, :p)"),
                 {"d": day, "p": as_date(previous)})
    if rows:
        conn.execute(text(
            "INSERT INTO roll_transitions (cycle_date, experiment_id, arm, stage, next_stage,"
            " accounts) VALUES (:d, :e, :a, :s, :n, :c)"),
            [{"d": day, "e": e, "a": a, "s": s, "n": n, "c": c} for e, a, s, n, c in rows])


def record(engine: Engine, day: date) -> None:
    with engine.begin() as conn:
        record_day(conn, day)
        following = conn.execute(text("SELECT MIN(cycle_date) FROM roll_days WHERE cycle_date > :d"),
                                 {"d": day}).scalar()
        if following is not None:
            record_day(conn, as_date(following))


def transitions(conn: Connection, start: date, end: date,
                experiment: str | None = None) -> dict[str, dict[str, dict[str, int]]]:
    """arm -> from-stage -> outcome -> account-days, over the pairs whose later date lies in
    [start, end] ('' is the arm of decisions outside any experiment). Counted days come from
    roll_transitions; a cycle date not counted yet (before this feature, or not published) is
    counted here on the fly."""
    out: dict[str, dict[str, dict[str, int]]] = {}

    def add(exp: str, arm: str, stage: str, after: str, n: int) -> None:
        if experiment is not None and exp != experiment:
            return
        cell = out.setdefault(arm, {s: dict.fromkeys(OUTCOMES, 0) for s in FROM_STAGES})
        cell[stage][_outcome(stage, after)] += n

    window = {"a": start, "b": end}
    for row in conn.execute(text(
            "SELECT experiment_id, arm, stage, next_stage, accounts FROM roll_transitions"
            " WHERE cycle_date >= :a AND cycle_date <= :b"), window):
        add(*row)
    missing = conn.execute(text(
        "SELECT DISTINCT d.cycle_date FROM decisions d WHERE d.replay = 0 AND d.cycle_date >= :a"
        " AND d.cycle_date <= :b AND NOT EXISTS (SELECT 1 FROM roll_days r"
        " WHERE r.cycle_date = d.cycle_date)"), window).all()
    for (day,) in missing:
        for row in day_transitions(conn, as_date(day)):
            add(*row)
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
