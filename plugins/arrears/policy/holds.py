"""Holds in force on the cycle date, from case events, protections, opt-outs and the balance."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

from arrears.model import Account, CaseEvent
from arrears.policy.config import Policy
from arrears.policy.plans import plan_of

# Holds that stop escalation (credit pre-notice and report, lawyer letter, disconnection).
STOPS_ESCALATION = frozenset({"disputed", "promise_to_pay", "payment_plan", "deceased"})
# Holds under which no message of any kind goes out.
STOPS_MESSAGES = frozenset({"disputed", "promise_to_pay", "deceased"})
# Holds that stop agents' calls and field visits too (a plan in good standing: reminders only).
STOPS_CONTACT = frozenset({"disputed", "promise_to_pay", "deceased", "payment_plan"})
# Holds that stop disconnection (notices, proposals and orders).
STOPS_DISCONNECTION = STOPS_ESCALATION | {"protected_medical", "protected_winter"}


def _case_holds(events: Iterable[CaseEvent], cycle_date: date) -> set[str]:
    holds: set[str] = set()
    known = sorted([e for e in events if e.effective_date <= cycle_date],
                   key=lambda e: (e.effective_date, e.event_id))
    dispute_open = False
    plan_until: date | None = None
    for e in known:
        if e.event_type == "dispute_opened":
            dispute_open = True
        elif e.event_type == "dispute_closed":
            dispute_open = False
        elif e.event_type == "promise_to_pay":
            # Broken (no hold) once D is past until_date with the account still in arrears.
            if e.until_date is not None and cycle_date <= e.until_date:
                holds.add("promise_to_pay")
        elif e.event_type == "payment_plan":
            plan_until = e.until_date
        elif e.event_type == "plan_broken":
            plan_until = None
        elif e.event_type == "deceased":
            holds.add("deceased")
    if dispute_open:
        holds.add("disputed")
    if plan_until is not None and cycle_date <= plan_until:
        holds.add("payment_plan")
    return holds


def protections_on(account: Account, day: date, policy: Policy) -> set[str]:
    """The protections that forbid disconnecting the account on ``day``."""
    held = set()
    if not account.protections:
        return held
    if "medical_device" in account.protections:
        held.add("protected_medical")
    if account.protections & {"low_income", "five_guarantee"} and day.month in policy.winter_months:
        held.add("protected_winter")
    return held


def active_holds(account: Account, events: Iterable[CaseEvent], outstanding_fen: int,
                 cycle_date: date, policy: Policy,
                 payments: Sequence[tuple[date, int]] = ()) -> set[str]:
    """``payments``: (paid_on, fen) known as of D, which an instalment plan is matched with."""
    events = list(events)
    holds = _case_holds(events, cycle_date)
    holds.update(protections_on(account, cycle_date, policy))
    if "payment_plan" in holds:
        plan = plan_of(events, payments, cycle_date, policy.plan_grace_days)
        if plan is not None and plan.state == "broken":
            holds.discard("payment_plan")  # a missed instalment ends the plan (CONTRACT §8)
    for channel in account.opt_out:
        holds.add(f"opt_out_{channel}")
    if outstanding_fen < policy.min_outstanding_fen:
        holds.add("below_threshold")
    return holds
