"""Task glue for disconnection: the cycle's step and the release DAG's steps (wiring in dags/)."""
from __future__ import annotations

import logging
from datetime import date, datetime
from zoneinfo import ZoneInfo

from arrears.disconnection.cycle import disconnection_step
from arrears.disconnection.release import (Safety, batch_summary, open_batch, record_answer,
                                           release_batch)
from arrears.orchestration import engine, run_from_context, settings
from arrears.policy import load_policy
from arrears.policy.business_days import BusinessCalendar
from arrears.settings import get_variable

log = logging.getLogger("arrears")

# The cycle announces a batch to approve on this asset; the release DAG is scheduled on it.
PROPOSALS_ASSET_URI = "arrears://disconnection/proposed_orders"
KILL_SWITCH_VARIABLE = "arrears_disconnection_kill_switch"
DRY_RUN_VARIABLE = "arrears_disconnection_dry_run"
TIMEOUT_VARIABLE = "arrears_disconnection_approval_hours"
DEFAULT_APPROVAL_HOURS = 4


def proposals_asset():
    from airflow.sdk import Asset
    return Asset(PROPOSALS_ASSET_URI)


def _policy(context):
    return load_policy((context.get("params") or {}).get("portfolio", "default"))


def _truthy(value) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


def approval_timeout_hours() -> float:
    return float(get_variable(TIMEOUT_VARIABLE) or DEFAULT_APPROVAL_HOURS)


# --- the collection cycle ---------------------------------------------------------------------

def cycle_disconnection(context) -> dict:
    """Serve, cancel, propose (not in a replay) and write D's disconnection files."""
    run = run_from_context(context)
    policy = _policy(context)
    outcome = disconnection_step(engine(), run, policy, BusinessCalendar.for_policy(policy),
                                 settings().outbox)
    summary = {"cycle_date": run.cycle_date.isoformat(), **outcome.as_dict()}
    log.info("disconnection summary: %s", summary)
    return summary


def announce_proposals(context, step: dict) -> dict:
    """Emit the proposals asset (the release DAG's trigger) only for a real batch to approve."""
    from airflow.sdk.exceptions import AirflowSkipException
    if step.get("replay"):
        raise AirflowSkipException("replay: no approval is asked for a replayed date")
    if not step.get("proposed"):
        raise AirflowSkipException("no disconnection orders proposed today: nothing to approve")
    extra = {"cycle_date": step["cycle_date"], "proposed": step["proposed"],
             "run_id": context["dag_run"].run_id}
    context["outlet_events"][proposals_asset()].extra = extra
    log.info("announced %d proposed orders of %s for approval", step["proposed"], step["cycle_date"])
    return extra


# --- the release DAG ----------------------------------------------------------------------------

def batch_date(context) -> date:
    """The cycle date of the batch: the triggering asset event's, else the run's conf/params."""
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in reversed(list(events)):
            if (event.extra or {}).get("cycle_date"):
                return date.fromisoformat(event.extra["cycle_date"])
    chosen = (context.get("params") or {}).get("cycle_date")
    if not chosen:
        raise ValueError("no cycle date: trigger with conf {\"cycle_date\": \"YYYY-MM-DD\"} "
                         "or let the collection cycle's proposals asset trigger this DAG")
    return date.fromisoformat(str(chosen))


def collect_proposals(context) -> dict:
    """The batch the supervisor is asked about; skips the approval when nothing is open."""
    from airflow.sdk.exceptions import AirflowSkipException
    day = batch_date(context)
    proposals = open_batch(engine(), day)
    if not proposals:
        raise AirflowSkipException(f"no open proposals for {day}: nothing to approve")
    summary = batch_summary(day, proposals)
    log.info("asking approval for %d orders of %s, CNY %s", summary["count"], day, summary["amount"])
    return summary


def _answer(context) -> dict | None:
    from arrears.disconnection.approval import ANSWER_KEY
    return context["ti"].xcom_pull(task_ids="approve", key=ANSWER_KEY)


def _release_date() -> date:
    now = datetime.now(ZoneInfo(settings().timezone))
    return date(now.year, now.month, now.day)


def release(context) -> dict:
    """After an approval: check again, apply the interlocks, release the work orders once."""
    from airflow.sdk.exceptions import AirflowSkipException
    answer = _answer(context) or {}
    user = answer.get("responded_by_user") or {}
    approver = user.get("name") or user.get("id") or ""
    run = run_from_context(context)
    policy = _policy(context)
    params = context.get("params") or {}
    safety = Safety(kill_switch=_truthy(get_variable(KILL_SWITCH_VARIABLE)),
                    dry_run=bool(params.get("dry_run")) or _truthy(get_variable(DRY_RUN_VARIABLE)))
    outcome = release_batch(
        engine(), batch_date=batch_date(context), release_date=_release_date(),
        approved_by=approver, responded_at=str(answer.get("responded_at") or ""), run=run,
        policy=policy, calendar=BusinessCalendar.for_policy(policy), safety=safety,
        outbox=settings().outbox)
    summary = {"approved_by": approver, **outcome.as_dict()}
    log.info("release summary: %s", summary)
    if outcome.status == "kill_switch":
        raise AirflowSkipException(
            f"kill switch {KILL_SWITCH_VARIABLE} is on: nothing released. Turn it off and clear "
            "this task to release the approved batch (each order is checked again).")
    return summary


def record_outcome(context) -> dict:
    """Record a rejection or a timeout (the default answer Reject); approvals record themselves."""
    answer = _answer(context)
    if not answer:
        log.info("no answer recorded (the approval did not run)")
        return {"outcome": "none"}
    chosen = (answer.get("chosen_options") or [""])[0]
    if chosen == "Approve":
        return {"outcome": "approved"}
    user = answer.get("responded_by_user")
    outcome = "timed_out" if answer.get("timedout") or not user else "rejected"
    approval_id = record_answer(engine(), batch_date(context), run_from_context(context), outcome,
                                (user or {}).get("name", ""), str(answer.get("responded_at") or ""))
    log.info("batch %s %s: nothing released", approval_id, outcome)
    return {"outcome": outcome, "approval_id": approval_id}
