"""Instalment plans (CONTRACT §8): each instalment matched with the account's payments.

Payments made on or after the plan's effective date pay its instalments in due-date order (a
payment larger than one instalment pays ahead). An instalment still not covered by what was paid
up to ``plan_grace_days`` after its due date breaks the plan on the day after that grace ends:
``plan_broken:instalment_<due_date>``, and the account resumes at its stage. Pure: no I/O.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from arrears.model import CaseEvent

PLAN_STATES = ("on_schedule", "behind", "broken", "completed")


@dataclass(frozen=True)
class PlanStatus:
    event_id: str
    state: str                      # one of PLAN_STATES
    paid_fen: int                   # paid towards the plan so far
    due_fen: int                    # instalments due on or before the cycle date
    next_due: date | None = None    # the first instalment not yet fully paid
    next_fen: int = 0               # what remains of it
    missed: date | None = None      # the instalment that broke the plan

    @property
    def reason(self) -> str:
        return f"plan_broken:instalment_{self.missed.isoformat()}" if self.missed else ""

    def describe(self) -> str:
        """For agents: ``on_schedule, next 2026-12-10 150.00`` / ``broken (instalment 2026-12-10)``."""
        from arrears.money import format_fen
        if self.state == "broken":
            return f"broken (instalment {self.missed})"
        if self.next_due is None:
            return self.state
        return f"{self.state}, next {self.next_due} {format_fen(self.next_fen)}"


def current_plan(events: Iterable[CaseEvent], cycle_date: date) -> CaseEvent | None:
    """The latest payment plan in force by its events (not ended by ``plan_broken`` or a later
    plan); its instalments, if any, are then checked by :func:`plan_status`."""
    plan = None
    for e in sorted([e for e in events if e.effective_date <= cycle_date],
                    key=lambda e: (e.effective_date, e.event_id)):
        if e.event_type == "payment_plan":
            plan = e
        elif e.event_type == "plan_broken":
            plan = None
    return plan


def plan_status(plan: CaseEvent, payments: Sequence[tuple[date, int]], cycle_date: date,
                grace_days: int) -> PlanStatus:
    """Where a plan with instalments stands on ``cycle_date``; ``payments`` are (paid_on, fen)
    known as of the cycle date."""
    mine = sorted((day, fen) for day, fen in payments
                  if plan.effective_date <= day < cycle_date)
    paid = sum(fen for _, fen in mine)
    owed = due = 0
    next_due, next_fen = None, 0
    for day, fen in plan.instalments:
        owed += fen
        if day <= cycle_date:
            due += fen
        deadline = day + timedelta(days=grace_days)
        paid_by_deadline = sum(f for d, f in mine if d <= deadline)
        if cycle_date > deadline and paid_by_deadline < owed:
            return PlanStatus(plan.event_id, "broken", paid, due, day, owed - paid_by_deadline,
                              missed=day)
        if next_due is None and paid < owed:
            next_due, next_fen = day, owed - paid
    if next_due is None:
        return PlanStatus(plan.event_id, "completed", paid, due)
    state = "behind" if next_due < cycle_date else "on_schedule"
    return PlanStatus(plan.event_id, state, paid, due, next_due, next_fen)


def plan_of(events: Iterable[CaseEvent], payments: Sequence[tuple[date, int]], cycle_date: date,
            grace_days: int) -> PlanStatus | None:
    """The status of the account's plan with instalments in force, or None."""
    plan = current_plan(events, cycle_date)
    if plan is None or not plan.instalments:
        return None
    return plan_status(plan, payments, cycle_date, grace_days)
