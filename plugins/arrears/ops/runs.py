"""The record of each cycle run (table cycle_runs): which runs were replays, and which backfills
were allowed to contact customers."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy import Engine, text

from arrears.audit import trail
from arrears.cycle.run import CycleRun

log = logging.getLogger(__name__)


def record_run(engine: Engine, run: CycleRun) -> None:
    """Insert the run's row, or update it when the run is retried or cleared and rerun (a cleared
    scheduled run keeps its run id but comes back as a backfill). ``started_at`` stays the first."""
    values = {"run_id": run.run_id, "cycle_date": run.cycle_date, "run_type": run.run_type,
              "replay": int(run.replay), "allow_contact": int(run.allow_contact)}
    # A replay never rewrites the row of a real run: a completed run reprocessed by a backfill
    # keeps its run id, and the record must still say the date ran for real (the replay has
    # its own audit entry, audit.sweep.replay_run_entry).
    mine = " AND replay = 1" if run.replay else ""
    with engine.begin() as conn:
        updated = conn.execute(text(
            "UPDATE cycle_runs SET cycle_date = :cycle_date, run_type = :run_type,"
            f" replay = :replay, allow_contact = :allow_contact WHERE run_id = :run_id{mine}"), values)
        real = run.replay and not updated.rowcount and conn.execute(text(
            "SELECT 1 FROM cycle_runs WHERE run_id = :run_id"), values).first() is not None
        if real:
            log.info("replay %s: the run ran for real before; its cycle_runs row stays", run.run_id)
        elif not updated.rowcount:
            conn.execute(text(
                "INSERT INTO cycle_runs (run_id, cycle_date, run_type, replay, allow_contact,"
                " started_at) VALUES (:run_id, :cycle_date, :run_type, :replay, :allow_contact,"
                " :started_at)"),
                {**values, "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    if run.is_backfill and run.allow_contact:
        # The one way a backfill may contact customers: on the audit trail, and in the task log.
        trail.record(engine, [trail.Entry(
            key=f"cycle/{run.cycle_date.isoformat()}/{run.run_id}/allow_contact", kind="cycle",
            payload={"event": "backfill_allow_contact", "run_type": run.run_type,
                     "allow_contact": True, "replay": run.replay},
            cycle_date=run.cycle_date, run_id=run.run_id, task_id=run.task_id,
            try_number=run.try_number)])
        log.warning("backfill %s of %s runs with allow_contact: messages and notices are live",
                    run.run_id, run.cycle_date)
