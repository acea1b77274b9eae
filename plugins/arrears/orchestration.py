"""The glue between Airflow task contexts and the domain's steps.

DAG files call these functions and nothing else; each one reads the run from the task context,
does one step of the cycle, logs a short summary and returns a small JSON-able dict for XCom.
"""
from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine

from arrears.cycle import decide as decide_step
from arrears.cycle import outputs
from arrears.cycle.run import CycleRun, cycle_date_of
from arrears.db import connect
from arrears.ingest import ingest_delivery
from arrears.ops.runs import record_run
from arrears.policy import load_policy
from arrears.policy.business_days import BusinessCalendar
from arrears.records.service import Recorder, record_service
from arrears.report import roll_rates
from arrears.report.summary import summary_block
from arrears.settings import Settings

log = logging.getLogger("arrears")
REQUIRED_FILES = ("accounts.csv", "open_items.csv")


_SETTINGS_TTL_SECONDS = 30.0
_settings_cache: tuple[tuple, float, Settings] | None = None


def settings() -> Settings:
    """The settings, read once per task rather than at every call (each read asks the API
    server for several variables). Cached briefly and keyed on the ARREARS environment
    variables: `dag.test` runs many tasks in one process, and an operator may change a
    variable between tasks."""
    global _settings_cache
    key = tuple(sorted((k, v) for k, v in os.environ.items()
                       if k.startswith(("AIRFLOW_VAR_ARREARS", "AIRFLOW_CONN_ARREARS"))))
    now = time.monotonic()
    if _settings_cache is None or _settings_cache[0] != key or _settings_cache[1] < now:
        _settings_cache = (key, now + _SETTINGS_TTL_SECONDS, Settings.load())
    return _settings_cache[2]


def engine() -> Engine:
    return connect(settings().db_url)


def record_what_happened(run: CycleRun, policy) -> None:
    """Before D is decided: whatever was delivered, served in person (case events known by D)
    or lost for good since the last dispatch is recorded (never by a replay)."""
    if not run.replay:
        record_service(engine(), settings().timezone, policy, BusinessCalendar.for_policy(policy),
                       Recorder(run.run_id, run.task_id, run.try_number), known_by=run.cycle_date)


def run_from_context(context) -> CycleRun:
    dag_run = context["dag_run"]
    params = context.get("params") or {}
    ti = context.get("ti")
    return CycleRun(
        cycle_date=cycle_date_of(context.get("logical_date"), getattr(dag_run, "run_after", None),
                                 settings().timezone),
        run_id=dag_run.run_id,
        run_type=str(getattr(dag_run.run_type, "value", dag_run.run_type)),
        allow_contact=bool(params.get("allow_contact", False)),
        dry_run=bool(params.get("dry_run", False)),
        try_number=getattr(ti, "try_number", 1) or 1,
        task_id=getattr(ti, "task_id", ""),
    )


def landing_folder(run: CycleRun) -> Path:
    return settings().landing / run.cycle_date.isoformat()


def landing_ready(context) -> bool:
    """Sensor body: True once the folder has its required files; fails after the deadline."""
    run = run_from_context(context)
    folder = landing_folder(run)
    if all((folder / name).is_file() for name in REQUIRED_FILES):
        return True
    wait = timedelta(minutes=int((context.get("params") or {}).get("landing_wait_minutes", 360)))
    started = context["dag_run"].start_date or datetime.now(timezone.utc)
    if datetime.now(timezone.utc) - started > wait:
        from airflow.sdk.exceptions import AirflowFailException
        raise AirflowFailException(
            f"landing folder {folder} with {', '.join(REQUIRED_FILES)} did not arrive within "
            f"{wait}: ask the billing team to deliver it, then clear this task")
    log.info("waiting for %s (%s)", folder, ", ".join(REQUIRED_FILES))
    return False


def ingest(context) -> dict:
    run = run_from_context(context)
    # The run's conf wins over the deployment's variable; neither is "undeclared" (UTF-8).
    encoding = (context.get("params") or {}).get("encoding") or settings().encoding
    result = ingest_delivery(engine(), landing_folder(run), run.cycle_date, settings().timezone,
                             encoding)
    summary = {"cycle_date": run.cycle_date.isoformat(), "fingerprint": result.fingerprint,
               "rows": result.rows, "quarantined": result.quarantined,
               "contact_gaps": result.contact_gaps}
    log.info("ingest summary: %s", summary)
    return summary


def stage(context) -> dict:
    run = run_from_context(context)
    bills = decide_step.stage_bills(engine(), run.cycle_date)
    log.info("staged %d bills for %s", bills, run.cycle_date)
    return {"bills": bills}


def decide(context, parts: list[dict] | None = None) -> dict:
    """D's decisions: made here, or merged from what the mapped decide_part tasks returned."""
    run = run_from_context(context)
    policy = load_policy((context.get("params") or {}).get("portfolio", "default"))
    record_run(engine(), run)
    if parts is None:
        record_what_happened(run, policy)
        result = decide_step.decide_cycle(engine(), run, policy, BusinessCalendar.for_policy(policy))
    else:
        from arrears.cycle.tasks import merge  # it imports this module
        result = merge(parts)
    summary = {"accounts": result.accounts, "by_stage": result.by_stage,
               "by_segment": result.by_segment, "replay": run.replay,
               "policy_version": policy.version,
               "try_number": run.try_number}  # the audit trail names the try that decided
    log.info("decision summary: %s", summary)
    return summary


def publish(context) -> dict:
    """decisions.csv and cycle_summary.json for the day."""
    from arrears.delivery import tasks as delivery_tasks  # it imports this module
    run = run_from_context(context)
    eng, outbox = engine(), settings().outbox
    decisions = outputs.write_decisions_csv(eng, outbox, run.cycle_date)
    summary = outputs.decision_counts(eng, run.cycle_date)
    summary["replay"] = run.replay
    summary["messages"] = delivery_tasks.summary_messages(eng, run.cycle_date)
    roll_rates.record(eng, run.cycle_date)
    summary.update(summary_block(eng, run.cycle_date))  # and deltas on the day before
    summary["channels"] = delivery_tasks.summary_channels(eng, run.cycle_date)
    path = outputs.write_summary(outbox, run.cycle_date, summary)
    log.info("published %s and %s", decisions, path)
    return {"decisions": str(decisions), "summary": str(path)}
