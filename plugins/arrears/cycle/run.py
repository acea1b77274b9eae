"""What a task knows about the run it belongs to."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class CycleRun:
    cycle_date: date
    run_id: str = "manual"
    run_type: str = "manual"
    allow_contact: bool = False
    dry_run: bool = False
    try_number: int = 1
    task_id: str = ""

    @property
    def replay(self) -> bool:
        """Recompute, contact nobody, and keep the decisions out of the contact history: a backfill
        run unless its conf allows contact, and any dry run."""
        return self.dry_run or (self.run_type == "backfill" and not self.allow_contact)

    @property
    def is_backfill(self) -> bool:
        return self.run_type == "backfill"


def cycle_date_of(logical_date: datetime | None, run_after: datetime | None, tz: str) -> date:
    """The cycle date: the logical date, else the run's run_after, in the utility's time zone."""
    moment = logical_date or run_after
    if moment is None:
        raise ValueError("the run has neither a logical date nor run_after")
    local = moment.astimezone(ZoneInfo(tz))
    return date(local.year, local.month, local.day)  # a plain date, not pendulum's subclass
