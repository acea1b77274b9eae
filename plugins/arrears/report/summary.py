"""cycle_summary.json's additions of CONTRACT §5: the month-to-date roll rates, and the deltas
against the previous cycle (accounts and amounts per stage, action and hold; roll rates)."""
from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from arrears.money import format_fen
from arrears.records.decided import Decided
from arrears.report.cycle_report import cycle_facts, previous_cycle
from arrears.report.roll_rates import OUTCOMES, month_to_date


def _rate_deltas(today: dict, before: dict) -> dict:
    return {stage: {o: (round(today[stage][o] - before[stage][o], 4)
                        if today[stage][o] is not None and before[stage][o] is not None else None)
                    for o in OUTCOMES} for stage in today}


def _count_deltas(today: dict, before: dict | None) -> dict:
    """name -> accounts and amount (outstanding) against the previous cycle."""
    before = before or {}
    return {name: {"accounts": count - before.get(name, [0, 0])[0],
                   "outstanding": format_fen(fen - before.get(name, [0, 0])[1])}
            for name, (count, fen) in today.items()}


def summary_block(engine: Engine, cycle_date: date, decided: Decided | None = None) -> dict:
    """``decided``: whose decisions of D (a replay's own); the cycle before is the real one."""
    prev = previous_cycle(engine, cycle_date)
    today_rates = month_to_date(engine, cycle_date)
    facts = cycle_facts(engine, cycle_date, decided)
    before = cycle_facts(engine, prev) if prev else None
    block = {
        "roll_rates": {"month_start": cycle_date.replace(day=1).isoformat(), "by_stage": today_rates},
        "previous_cycle": prev.isoformat() if prev else None,
        "deltas": None,
    }
    if prev is not None:
        block["deltas"] = {key: _count_deltas(facts[key], before[key])
                           for key in ("by_stage", "by_action", "by_hold")}
        block["deltas"]["accounts"] = facts["accounts"] - before["accounts"]
        block["deltas"]["roll_rates"] = _rate_deltas(today_rates, month_to_date(engine, prev))
    return block

