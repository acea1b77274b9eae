"""Task glue for the ingest area: the landing sensor and the load of D's extract."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from arrears import orchestration
from arrears.audit import pii
from arrears.ingest import ingest_delivery

log = logging.getLogger("arrears")
REQUIRED_FILES = ("accounts.csv", "open_items.csv")


def landing_ready(context) -> bool:
    """Sensor body: True once the folder has its required files; fails after the deadline."""
    run = orchestration.run_from_context(context)
    folder = orchestration.landing_folder(run)
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
    run = orchestration.run_from_context(context)
    if run.replay:
        recorded = _recorded(run.cycle_date)
        if recorded is not None:  # a replay never changes the real record (CONTRACT §4)
            log.info("replay %s: %s was ingested already (%s); the replay decides from that"
                     " record and loads nothing", run.run_id, run.cycle_date, recorded[1])
            return {"cycle_date": run.cycle_date.isoformat(), "fingerprint": recorded[0],
                    "replay": True, "note": "replay: the date's recorded extract is used as is"}
    # The run's conf wins over the deployment's variable; neither is "undeclared" (UTF-8).
    settings = orchestration.settings()
    encoding = (context.get("params") or {}).get("encoding") or settings.encoding
    engine = orchestration.engine()
    result = ingest_delivery(engine, orchestration.landing_folder(run), run.cycle_date,
                             settings.timezone, encoding)
    # Once per delivery, so every later task's log masking starts from one stored row.
    pii.prepare(engine, run.cycle_date)
    summary = {"cycle_date": run.cycle_date.isoformat(), "fingerprint": result.fingerprint,
               "rows": result.rows, "quarantined": result.quarantined,
               "contact_gaps": result.contact_gaps}
    log.info("ingest summary: %s", summary)
    return summary


def _recorded(cycle_date) -> tuple[str, str] | None:
    """(fingerprint, ingested at) of D's extract, if it was ingested."""
    from sqlalchemy import text
    with orchestration.engine().connect() as conn:
        row = conn.execute(text("SELECT fingerprint, ingested_at FROM deliveries"
                                " WHERE cycle_date = :d"), {"d": cycle_date}).first()
    return tuple(row) if row is not None else None
