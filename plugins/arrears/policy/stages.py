"""Days past due and the stage bands."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from arrears.model import OpenBill
from arrears.policy.config import Policy


def days_past_due(bills: Iterable[OpenBill], cycle_date: date) -> int:
    """``D - due_date`` of the oldest bill still unpaid after payments; 0 with nothing unpaid."""
    unpaid = [b.due_date for b in bills if b.open_fen > 0]
    return max((cycle_date - min(unpaid)).days, 0) if unpaid else 0


def stage_for(dpd: int, policy: Policy) -> str:
    if dpd >= policy.escalation_from:
        return "escalation"
    if dpd >= policy.formal_notice_from:
        return "formal_notice"
    if dpd >= policy.reminder_from:
        return "reminder"
    return "current"
