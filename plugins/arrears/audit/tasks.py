"""Task glue for the audit and report steps at the end of the cycle DAG."""
from __future__ import annotations

import logging

from arrears import orchestration
from arrears.audit import checkpoint, sweep, trail

log = logging.getLogger("arrears.audit")


def audit(context) -> dict:
    """Append the day's decisions and every side effect not yet in the trail; verify the chain."""
    run = orchestration.run_from_context(context)
    engine = orchestration.engine()
    decide_try = 0
    ti = context.get("ti")
    if ti is not None:
        try:
            decide_try = int((ti.xcom_pull(task_ids="decide") or {}).get("try_number") or 0)
        except Exception:  # noqa: BLE001 - the try number is a nicety, not a reason to fail
            decide_try = 0
    with engine.begin() as conn:
        found, sources = sweep.collect(conn, run, orchestration.settings().outbox, decide_try)
        added = trail.append_entries(conn, found)
    # From the last checkpoint, then a new one anchored in the day's outbox (not by a replay,
    # which never writes into the real day folder).
    with engine.begin() as conn:
        check = checkpoint.verify_daily(conn)
        made = None if run.replay else checkpoint.write(conn, orchestration.settings().outbox,
                                                        run.cycle_date, check)
    by_kind: dict[str, int] = {}
    for entry in found:
        by_kind[entry.kind] = by_kind.get(entry.kind, 0) + 1
    summary = {"cycle_date": run.cycle_date.isoformat(), "seen": len(found), "appended": added,
               "already_recorded": len(found) - added, "by_kind": by_kind, "sources": sources,
               "chain_ok": check.ok, "chain_verification": check.mode,
               "chain_entries_read": check.result.entries,
               "checkpoint": made.seq if made else None}
    log.info("audit summary: %s", summary)
    if not check.ok:
        from airflow.sdk.exceptions import AirflowFailException
        raise AirflowFailException(check.describe())
    return summary


def report(context) -> dict:
    """cycle_report.html for the day, after every step that acts has run."""
    from arrears.report.cycle_report import write_cycle_report
    run = orchestration.run_from_context(context)
    path, facts = write_cycle_report(orchestration.engine(), orchestration.settings().outbox,
                                     run.cycle_date, run)
    if not run.replay:  # a replay never alerts about today
        from arrears.batches.objections import alert_overdue
        from arrears.policy import load_policy
        portfolio = (context.get("params") or {}).get("portfolio", "default")
        facts["objection_alerts"] = alert_overdue(orchestration.engine(), run.cycle_date,
                                                  load_policy(portfolio))
    log.info("report summary: %s", {"report": str(path), **facts})
    return {"report": str(path), **facts}
