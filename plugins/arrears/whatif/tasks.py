"""Task glue for the DAG arrears_policy_whatif and the `arrears whatif` command."""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date

from arrears.policy import load_policy
from arrears.settings import Settings
from arrears.whatif.outputs import build_summary, write_outputs
from arrears.whatif.run import WhatIfError, run_whatif

log = logging.getLogger("arrears.whatif")


def parse_day(value, name: str) -> date:
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise WhatIfError(f"{name} {value!r} is not a date YYYY-MM-DD") from None


def whatif(settings: Settings, portfolio: str, date_from: date, date_to: date,
           progress: Callable[[str], None] = log.info) -> dict:
    """Run the what-if and write its files; returns the headline numbers."""
    policy = load_policy(portfolio)
    result = run_whatif(settings.db_url, policy, portfolio, date_from, date_to,
                        tz=settings.timezone, progress=progress)
    folder = write_outputs(result, settings.outbox)
    summary = build_summary(result)
    headline = {"id": result.whatif_id, "folder": str(folder), "dates": len(result.days),
                "missing_extracts": summary["missing_extracts"],
                "changed_rows": summary["changed_rows"],
                "delta_by_action": {a: n for a, n in summary["totals"]["delta"].items() if n},
                "seconds": round(result.seconds, 1)}
    progress(f"what-if {result.whatif_id} done in {result.seconds:.1f} s: {folder}")
    return headline


def from_context(context) -> dict:
    """The DAG's task: Params portfolio, from, to."""
    from arrears import orchestration
    params = context.get("params") or {}
    return whatif(orchestration.settings(), str(params.get("portfolio") or "default"),
                  parse_day(params.get("from"), "from"), parse_day(params.get("to"), "to"))

