"""Task glue for delivery: what the DAGs call (queue, dispatch, the hourly outbox sweep)."""
from __future__ import annotations

import json
import logging
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import text

from arrears import orchestration as steps
from arrears.cycle import outputs
from arrears.db.values import as_date
from arrears.delivery.dispatch import Clock, dispatch, wall_clock
from arrears.delivery.outbox import Attempt, message_counts, queue_messages
from arrears.channels import registry as channel_registry
from arrears.delivery.transports import mail_domain
from arrears.outbox_files import day_folder
from arrears.policy import load_policy
from arrears.records.service import Recorder, after_dispatch
from arrears.settings import Settings, get_connection
from arrears.settings import contact_window as settings_window

log = logging.getLogger("arrears")
POOL = "arrears_smtp"   # limits concurrent SMTP connections across DAGs (README: Reminders and notices)


def transports(settings: Settings) -> dict:
    """Connections when configured, else the embedded defaults (files under the outbox)."""
    return channel_registry.transports(settings.outbox, get_connection)


def _attempt(context) -> Attempt:
    ti = context.get("ti")
    return Attempt(run_id=context["dag_run"].run_id, task_id=getattr(ti, "task_id", ""),
                   try_number=getattr(ti, "try_number", 1) or 1)


def _last_try(context) -> bool:
    ti = context.get("ti")
    return (getattr(ti, "try_number", 1) or 1) > (getattr(ti, "max_tries", 0) or 0)


@steps.batch_step
def queue(context, clock: Clock = wall_clock) -> dict:
    run = steps.run_from_context(context)
    if run.replay:
        log.info("replay run %s: no message is queued for %s", run.run_id, run.cycle_date)
        return {"replay": True, "queued": 0, "note": "replay: no message queued or sent"}
    policy = load_policy((context.get("params") or {}).get("portfolio", "default"))
    result = queue_messages(steps.engine(), run, policy, mail_domain(get_connection("arrears_smtp")),
                            clock())
    log.info("outbox for %s: %s", run.cycle_date, result.as_dict())
    return result.as_dict()


def contact_window(context):
    """The Airflow variable arrears_contact_window, else the portfolio policy's window."""
    portfolio = (context.get("params") or {}).get("portfolio", "default")
    return settings_window(load_policy(portfolio).contact_window)


def _dispatch(context, dates, clock: Clock) -> dict:
    s, attempt = steps.settings(), _attempt(context)
    eng = steps.engine()
    result = dispatch(eng, transports(s), tz=s.timezone, window=contact_window(context),
                      attempt=attempt, dates=dates, clock=clock)
    summary = result.as_dict()
    log.info("dispatch: %s", summary)
    portfolio = (context.get("params") or {}).get("portfolio", "default")
    summary["service"] = after_dispatch(eng, s.outbox, s.timezone, load_policy(portfolio),
                                        Recorder(attempt.run_id, attempt.task_id, attempt.try_number), dates)
    with eng.connect() as conn:
        for key, error in conn.execute(text(
                "SELECT idem_key, last_error FROM outbox WHERE status = 'permanent_failure'"
                " AND run_id = :r AND task_id = :t AND try_number = :n ORDER BY idem_key"),
                {"r": attempt.run_id, "t": attempt.task_id, "n": attempt.try_number}):
            log.warning("not deliverable, not retried: %s: %s", key, error)
    if result.retry_wanted:
        detail = result.outage or f"{result.failed} messages failed for now"
        if not _last_try(context):
            # Airflow's retry is the next attempt: sent messages are not sent again.
            raise RuntimeError(f"{detail}; this task is retried and sends only what is still "
                               f"unsent (check the SMTP server / SMS gateway if it persists)")
        log.warning("%s; last try: the hourly arrears_outbox_dispatch DAG picks them up", detail)
    return summary


@steps.batch_step
def dispatch_cycle(context, clock: Clock = wall_clock) -> dict:
    """The cycle's own dispatch of D's messages (nothing at all for a replay run)."""
    run = steps.run_from_context(context)
    if run.replay:
        log.info("replay run %s: nothing is sent", run.run_id)
        return {"replay": True, "sent": 0, "note": "replay: no message queued or sent"}
    return _dispatch(context, [run.cycle_date], clock)


@steps.batch_step
def sweep(context, clock: Clock = wall_clock) -> dict:
    """Hourly: send what waits (deferred, failed, left by a crash) once the window is open, and
    refresh the `messages` counts of each touched date's cycle_summary.json."""
    s = steps.settings()
    today = clock().astimezone(ZoneInfo(s.timezone)).date()
    eng = steps.engine()
    with eng.connect() as conn:
        dates = sorted({as_date(d) for (d,) in conn.execute(text(
            "SELECT DISTINCT cycle_date FROM outbox WHERE status IN"
            " ('queued', 'deferred', 'failed', 'sending') AND cycle_date <= :t"), {"t": today})})
    summary = _dispatch(context, dates, clock) if dates else {"dates": []}
    for day in dates:
        refresh_summary(s, day)
    return summary


def summary_channels(engine, cycle_date: date) -> dict:
    """cycle_summary.json's `channels`: per channel, D's messages by outbox status and what
    came back (delivered receipts, receipts, replies, opt-outs), zeros left out."""
    from arrears.report.cycle_report import messages
    return {c: {k: n for k, n in v.items() if n} for c, v in (messages(engine, cycle_date) or {}).items()}


def refresh_summary(settings: Settings, cycle_date: date) -> None:
    """The real run's summary of D (messages are sent for real runs only)."""
    folder = day_folder(settings.outbox, cycle_date)
    path = folder / "cycle_summary.json"
    if not path.exists():
        return  # publish writes it with the counts
    summary = json.loads(path.read_text(encoding="utf-8"))
    summary["messages"] = message_counts(steps.engine(), cycle_date)
    summary["channels"] = summary_channels(steps.engine(), cycle_date)
    outputs.write_summary(folder, cycle_date, summary)
