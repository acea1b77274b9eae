"""Task glue for the cycle area: staging, the decisions split over Celery workers (a plan of
account ranges, one mapped task per range: ``decide_part.expand(part=plan_decisions())``, and
the merge of their results), and publishing decisions.csv and cycle_summary.json.

Every range is decided from the same state and writes only its own accounts' rows, so the parts
may run in any order, on any worker, and each may be retried alone.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from arrears import orchestration
from arrears.cycle import decide as decide_step
from arrears.cycle import state as decision_state
from arrears.cycle import outputs
from arrears.cycle.run import CycleRun
from arrears.delivery.outbox import STATUSES, message_counts
from arrears.delivery.tasks import summary_channels
from arrears.ops.runs import record_run
from arrears.outbox_files import run_folder
from arrears.policy import load_policy
from arrears.policy.business_days import BusinessCalendar
from arrears.records.decided import Decided
from arrears.records.service import Recorder, record_service
from arrears.report import roll_rates
from arrears.report.summary import summary_block

log = logging.getLogger("arrears")


def plan(context, size: int = decide_step.PART_SIZE) -> list[dict]:
    """The parts of D's accounts; for a real run, the decision state brought up to D-1 once
    here, so the parts find it done instead of waiting for one of them to do it."""
    run = orchestration.run_from_context(context)
    engine = orchestration.engine()
    portfolio = (context.get("params") or {}).get("portfolio", "default")
    record_what_happened(run, load_policy(portfolio))
    if not run.replay:
        decision_state.bring_up_to(engine, run.cycle_date - timedelta(days=1))
    parts = decide_step.plan_parts(engine, run.cycle_date, size)
    log.info("deciding %s in %d part(s) of up to %d accounts", run.cycle_date, len(parts), size)
    return [{"lo": p.lo, "hi": p.hi} for p in parts]


def decide_part(context, part: dict) -> dict:
    run = orchestration.run_from_context(context)
    policy = load_policy((context.get("params") or {}).get("portfolio", "default"))
    result = decide_step.decide_cycle(
        orchestration.engine(), run, policy, BusinessCalendar.for_policy(policy),
        decide_step.AccountRange(part["lo"], part["hi"]))
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


def stage(context) -> dict:
    run = orchestration.run_from_context(context)
    if run.replay and decide_step.staged(orchestration.engine(), run.cycle_date):
        log.info("replay %s: %s is staged already; the replay decides from it", run.run_id,
                 run.cycle_date)
        return {"bills": None, "replay": True, "note": "replay: the date's staged bills are used"}
    bills = decide_step.stage_bills(orchestration.engine(), run.cycle_date)
    log.info("staged %d bills for %s", bills, run.cycle_date)
    return {"bills": bills}


def record_what_happened(run: CycleRun, policy) -> None:
    """Before D is decided: whatever was delivered, served in person (case events known by D)
    or lost for good since the last dispatch is recorded (never by a replay)."""
    if not run.replay:
        record_service(orchestration.engine(), orchestration.settings().timezone, policy,
                       BusinessCalendar.for_policy(policy),
                       Recorder(run.run_id, run.task_id, run.try_number), known_by=run.cycle_date)


def decide(context, parts: list[dict] | None = None) -> dict:
    """D's decisions: made here, or merged from what the mapped decide_part tasks returned."""
    run = orchestration.run_from_context(context)
    policy = load_policy((context.get("params") or {}).get("portfolio", "default"))
    record_run(orchestration.engine(), run)
    if parts is None:
        record_what_happened(run, policy)
        result = decide_step.decide_cycle(orchestration.engine(), run, policy,
                                          BusinessCalendar.for_policy(policy))
    else:
        result = merge(parts)
    summary = {"accounts": result.accounts, "by_stage": result.by_stage,
               "by_segment": result.by_segment, "replay": run.replay,
               "policy_version": policy.version,
               "try_number": run.try_number}  # the audit trail names the try that decided
    log.info("decision summary: %s", summary)
    return summary


def publish(context) -> dict:
    """decisions.csv and cycle_summary.json for the day; a replay's under
    ``<D>/replays/<run id>/``, of its own decisions, with its differences from the real ones."""
    run = orchestration.run_from_context(context)
    eng, folder = orchestration.engine(), run_folder(orchestration.settings().outbox, run)
    decided = Decided.of(run)
    decisions = outputs.write_decisions_csv(eng, folder, run.cycle_date, decided)
    summary = outputs.decision_counts(eng, run.cycle_date, decided)
    summary["replay"] = run.replay
    if run.replay:  # it sent nothing, and the roll rates are the real record's
        summary["run_id"] = run.run_id
        summary["messages"] = dict.fromkeys(STATUSES, 0)
        summary["differences"] = outputs.write_differences(eng, folder, decided)
    else:
        summary["messages"] = message_counts(eng, run.cycle_date)
        roll_rates.record(eng, run.cycle_date)
    summary.update(summary_block(eng, run.cycle_date, decided))  # and deltas on the day before
    summary["channels"] = {} if run.replay else summary_channels(eng, run.cycle_date)
    path = outputs.write_summary(folder, run.cycle_date, summary)
    log.info("published %s and %s", decisions, path)
    return {"decisions": str(decisions), "summary": str(path)}
