"""Alerts to the operations team by mail through the ``arrears_smtp`` connection: a task that
failed, and a cycle not finished by its configured local time (an Airflow deadline alert).

The ops address is the Airflow variable ``arrears_ops_email``; the finish-by time is
``arrears_cycle_finish_by`` (``HH:MM`` in the utility's time zone, read when the DAG is parsed,
so set it as ``AIRFLOW_VAR_ARREARS_CYCLE_FINISH_BY`` in the deployment's environment; unset, the
cycle has no deadline).
"""
from __future__ import annotations

import asyncio
import html
import logging
import os
from datetime import datetime, time, timedelta

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from arrears.settings import SettingsError, get_connection, get_variable

log = logging.getLogger(__name__)

SMTP_CONN_ID = "arrears_smtp"
OPS_EMAIL_VARIABLE = "arrears_ops_email"
DEFAULT_OPS_EMAIL = "collections-ops@localhost"
FINISH_BY_VARIABLE = "arrears_cycle_finish_by"


def ops_address() -> str:
    return get_variable(OPS_EMAIL_VARIABLE) or DEFAULT_OPS_EMAIL


# -- failed tasks ---------------------------------------------------------------------------------
class OpsFailureNotifier(SmtpNotifier):
    """SmtpNotifier to the ops address; without an ``arrears_smtp`` connection (the embedded
    default) it logs the alert instead of failing the callback on a missing connection."""

    def notify(self, context):
        if get_connection(self.smtp_conn_id) is None:
            log.error("ops alert not mailed (no %s connection): %s", self.smtp_conn_id, self.subject)
            return
        super().notify(context)


def failure_notifier() -> OpsFailureNotifier:
    """The task-level ``on_failure_callback`` of the cycle's tasks (templated in the task's
    context, so the address comes from the variable at the time of the failure)."""
    return OpsFailureNotifier(
        smtp_conn_id=SMTP_CONN_ID,
        to="{{ var.value.get('%s', '%s') }}" % (OPS_EMAIL_VARIABLE, DEFAULT_OPS_EMAIL),
        subject="[arrears] {{ ti.dag_id }}.{{ ti.task_id }} failed: {{ dag_run.run_id }}",
        html_content=(
            "<p>Task <b>{{ ti.task_id }}</b> of <b>{{ ti.dag_id }}</b> failed on try "
            "{{ ti.try_number }} for run <code>{{ dag_run.run_id }}</code> "
            "(logical date {{ dag_run.logical_date }}).</p>"
            "<p>Error: <code>{{ exception | e }}</code></p>"
            "<p>Read the task log, fix the cause, then clear the task to retry: every step is "
            "idempotent, nothing is sent twice.</p>"),
    )


# -- the cycle's deadline -----------------------------------------------------------------------
def deadline_interval(scheduled_at: time, finish_by: str) -> timedelta:
    """How long after its scheduled time (when the run is queued) the cycle must be finished."""
    try:
        limit = time.fromisoformat(finish_by)
    except ValueError:
        raise SettingsError(f"{FINISH_BY_VARIABLE} {finish_by!r} is not HH:MM") from None
    day = datetime(2000, 1, 1)
    gap = datetime.combine(day, limit) - datetime.combine(day, scheduled_at)
    return gap if gap > timedelta(0) else gap + timedelta(days=1)


def cycle_deadline(scheduled_at: time):
    """DeadlineAlert for the cycle DAG: finished by ``arrears_cycle_finish_by`` local time; None
    (no deadline) when the deployment does not configure it.

    Off unless configured because ``dag.test()`` / ``airflow dags test`` of a DAG with a deadline
    crash when the run succeeds (3.3.2 looks the alerts up by id, and an unsynced DAG has none).
    """
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    finish_by = os.environ.get(f"AIRFLOW_VAR_{FINISH_BY_VARIABLE.upper()}")
    if not finish_by:
        return None
    return DeadlineAlert(
        # Queued-at, not the logical date: a backfilled date must not count as late at once.
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=deadline_interval(scheduled_at, finish_by),
        callback=AsyncCallback("arrears.ops.alerts.cycle_deadline_missed",
                               kwargs={"finish_by": finish_by}),
    )


def deadline_message(finish_by: str, dag_run: dict) -> tuple[str, str]:
    run_id = dag_run.get("dag_run_id") or dag_run.get("run_id") or "?"
    subject = f"[arrears] collection cycle {run_id} not finished by {finish_by}"
    body = (f"<p>The collection cycle run <code>{html.escape(run_id)}</code> (logical date "
            f"{html.escape(str(dag_run.get('logical_date')))}, state "
            f"{html.escape(str(dag_run.get('state')))}) has not finished by {finish_by} local "
            "time.</p><p>Look at the run in Airflow: a task waiting (landing folder, pool) or "
            "failing needs attention before messages can go out inside today's contact "
            "window.</p>")
    return subject, body


async def cycle_deadline_missed(finish_by: str, context: dict | None = None) -> str:
    """The deadline's callback, run by the triggerer: mail the ops address.

    Backfill runs are queued together and run one after another, so their deadline says nothing
    about the day's operation: they are logged, not mailed.
    """
    dag_run = (context or {}).get("dag_run") or {}
    subject, body = deadline_message(finish_by, dag_run)
    if dag_run.get("run_type") == "backfill":
        log.info("deadline passed for backfill run %s: not alerting", dag_run.get("dag_run_id"))
        return "skipped: backfill"
    to = await asyncio.to_thread(ops_address)
    if await asyncio.to_thread(get_connection, SMTP_CONN_ID) is None:
        log.error("ops alert not mailed (no %s connection): %s", SMTP_CONN_ID, subject)
        return "logged"
    notifier = SmtpNotifier(smtp_conn_id=SMTP_CONN_ID, to=to, subject=subject, html_content=body)
    await notifier.async_notify(context or {})
    log.warning("deadline alert sent to %s: %s", to, subject)
    return f"mailed {to}"
