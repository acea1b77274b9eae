"""Credit-bureau objections (征信异议, CONTRACT §8): an objection is open from its
``bureau_objection`` event until a ``bureau_objection_resolved`` one; it must be answered within
``answer_days`` (20) and ops are alerted once it has been open more than ``alert_after_days``
(15), i.e. from day 16. Pure: no I/O."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from arrears.model import CaseEvent


@dataclass(frozen=True)
class Objection:
    event_id: str
    raised_on: date
    day: int            # day 1 is the day it was raised
    days_left: int      # to answer it; negative once overdue
    alert: bool         # past the alert threshold: ops must be told


def open_objection(events: Iterable[CaseEvent], cycle_date: date, answer_days: int = 20,
                   alert_after_days: int = 15) -> Objection | None:
    """The account's objection still open on ``cycle_date`` (the earliest unanswered one: its
    clock runs from when it was raised), or None."""
    raised: CaseEvent | None = None
    for e in sorted((e for e in events if e.effective_date <= cycle_date),
                    key=lambda e: (e.effective_date, e.event_id)):
        if e.event_type == "bureau_objection" and raised is None:
            raised = e
        elif e.event_type == "bureau_objection_resolved":
            raised = None
    if raised is None:
        return None
    day = (cycle_date - raised.effective_date).days + 1
    return Objection(raised.event_id, raised.effective_date, day, answer_days - day + 1,
                     day > alert_after_days)
