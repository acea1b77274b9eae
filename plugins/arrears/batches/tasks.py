"""Task glue for the escalation batches: the DAG's lawyer_letters, credit_report and agent_lists
tasks call these with the task context."""
from __future__ import annotations

import logging

from arrears import orchestration
from arrears.batches import agent_lists as lists
from arrears.batches import bureau, letters
from arrears.outbox_files import run_folder
from arrears.records.decided import Decided

log = logging.getLogger("arrears")


def _where(context):
    """The run, its folder and whose decisions it reads (a replay's own, records.decided)."""
    run = orchestration.run_from_context(context)
    decided = Decided.of(run)
    return run, run_folder(orchestration.settings().outbox, run), decided


@orchestration.batch_step
def lawyer_letters(context) -> dict:
    run, folder, decided = _where(context)
    result = letters.write_lawyer_letters(orchestration.engine(), folder, run.cycle_date, run.replay,
                                          decided=decided)
    summary = {"letters": result.letters, "folder": result.folder, "seconds": result.seconds,
               "replay": run.replay}
    log.info("lawyer letters: %s", summary)
    return summary


def credit_report(context) -> dict:
    run, folder, decided = _where(context)
    result = bureau.write_credit_report(orchestration.engine(), folder, run.cycle_date, run.replay,
                                        decided=decided)
    summary = {"records": result.records, "amount_total": result.amount_total,
               "file": result.file, "replay": run.replay}
    log.info("credit report: %s", summary)
    return summary


def agent_lists(context) -> dict:
    run, folder, decided = _where(context)
    from arrears.policy import load_policy
    policy = load_policy((context.get("params") or {}).get("portfolio", "default"))
    result = lists.write_agent_lists(orchestration.engine(), folder, run.cycle_date, policy, decided)
    summary = {"call_list": result.calls, "field_visits": result.visits, "folder": str(folder),
               "replay": run.replay}
    log.info("agent lists: %s", summary)
    return summary
