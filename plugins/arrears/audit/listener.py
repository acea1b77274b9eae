"""Task listener (registered by plugins/arrears_plugin.py): before any task of an ``arrears_*``
DAG runs, mask personal data in its log (arrears.audit.pii)."""
from __future__ import annotations

import logging

from airflow.listeners import hookimpl

log = logging.getLogger("arrears.audit")


@hookimpl
def on_task_instance_running(previous_state, task_instance):
    if not str(getattr(task_instance, "dag_id", "")).startswith("arrears_"):
        return
    from arrears.audit import pii
    pii.install()
    pii.mask_std_streams()  # print() goes to the supervisor's pipes, past the log processors
    try:
        from arrears import orchestration
        context = task_instance.get_template_context()
        run = orchestration.run_from_context(context)
        added = pii.protect_task_logs(orchestration.engine(), run.cycle_date)
        log.info("personal data masked in this log: %d known values and every email/phone"
                 " (by the package itself; Airflow's masker is handed none of them)", added)
    except Exception as exc:  # noqa: BLE001 - masking by pattern still applies; say why not more
        log.warning("only emails and phone numbers are masked in this log (%s: %s)",
                    type(exc).__name__, pii.mask_text(str(exc)))
