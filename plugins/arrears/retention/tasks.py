"""Task glue for the DAG ``arrears_retention``."""
from __future__ import annotations

import logging

from arrears import orchestration
from arrears.policy.retention import load_retention
from arrears.retention import purge

log = logging.getLogger("arrears.retention")


def retention(context) -> dict:
    """Purge what the policy's [retention] no longer allows keeping as of the run's date."""
    run = orchestration.run_from_context(context)
    params = context.get("params") or {}
    summary = purge.run(orchestration.engine(), orchestration.settings().outbox, run.cycle_date,
                        load_retention(params.get("portfolio") or "default"),
                        dry_run=bool(params.get("dry_run")), run_id=run.run_id,
                        task_id=run.task_id)
    log.info("retention summary: %s", summary)
    return summary
