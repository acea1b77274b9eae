"""Task glue for the decisions split over Celery workers: a plan of account ranges, one mapped
task per range (``decide_part.expand(part=plan_decisions())``), and the merge of their results.

Every range is decided from the same state and writes only its own accounts' rows, so the parts
may run in any order, on any worker, and each may be retried alone.
"""
from __future__ import annotations

import logging

from arrears import orchestration
from arrears.cycle import decide as decide_step
from arrears.policy import load_policy
from arrears.policy.business_days import BusinessCalendar

log = logging.getLogger("arrears")


def plan(context, size: int = decide_step.PART_SIZE) -> list[dict]:
    """The parts of D's accounts, each with the replay flag worked out once for all of them."""
    run = orchestration.run_from_context(context)
    engine = orchestration.engine()
    portfolio = (context.get("params") or {}).get("portfolio", "default")
    orchestration.record_what_happened(run, load_policy(portfolio))
    with engine.connect() as conn:
        replay = decide_step.replay_flag(conn, run)
    parts = decide_step.plan_parts(engine, run.cycle_date, size)
    log.info("deciding %s in %d part(s) of up to %d accounts", run.cycle_date, len(parts), size)
    return [{"lo": p.lo, "hi": p.hi, "replay": replay} for p in parts]


def decide_part(context, part: dict) -> dict:
    run = orchestration.run_from_context(context)
    policy = load_policy((context.get("params") or {}).get("portfolio", "default"))
    result = decide_step.decide_cycle(
        orchestration.engine(), run, policy, BusinessCalendar.for_policy(policy),
        decide_step.AccountRange(part["lo"], part["hi"]), replay=part["replay"])
    log.info("decided %d accounts in [%r, %r)", result.accounts, part["lo"], part["hi"])
    return {"accounts": result.accounts, "by_stage": result.by_stage, "by_segment": result.by_segment}


def merge(results) -> decide_step.DecideResult:
    """The parts' results as one."""
    total = decide_step.DecideResult()
    for result in results:
        total.accounts += result["accounts"]
        for stage, n in result["by_stage"].items():
            total.by_stage[stage] = total.by_stage.get(stage, 0) + n
        for segment, n in result.get("by_segment", {}).items():
            total.by_segment[segment] = total.by_segment.get(segment, 0) + n
    return total
