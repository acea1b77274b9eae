"""How a segment changes the treatment, inside every contract limit (CONTRACT §6): the lawyer
letter's DPD floor, the late-fee waiver, the next legal step a wilful customer is told of, and
the agents' call-list order. Pure functions, like the rest of the policy."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from arrears.model import Account
from arrears.policy.config import Policy


def lawyer_min_dpd(segment: str, policy: Policy) -> int:
    """The lawyer letter's DPD floor for the segment (wilful: 45 by default, §6)."""
    return policy.segments.lawyer_letter_floors.get(segment, policy.lawyer_min_dpd)


def late_fee_waiver(account: Account, segment: str, policy: Policy) -> str | None:
    """Why the late fee is shown as waived (a protection or the segment), or None."""
    if not policy.late_fee_waive_for:  # the default: no relief scheme
        return None
    why = sorted(account.protections & policy.late_fee_waive_for)
    if segment in policy.late_fee_waive_for:
        why.append(segment)
    return "+".join(why) or None


def next_legal_step(segment: str, dpd: int, outstanding_fen: int, kinds: Iterable[str],
                    cycle_date: date, policy: Policy, report_from: date | None,
                    earliest_disconnection: date | None) -> tuple[str, date | None]:
    """The next step of due process and its date, for the formal register of a wilful
    customer's message: the earliest of what is announced today or what the DPD reaches next."""
    kinds = set(kinds)
    steps: list[tuple[date, str]] = []
    if dpd < policy.escalation_from:
        steps.append((cycle_date + timedelta(days=policy.escalation_from - dpd), "credit_prenotice"))
    letter_from = lawyer_min_dpd(segment, policy)
    if dpd < letter_from and outstanding_fen >= policy.lawyer_min_outstanding_fen:
        steps.append((cycle_date + timedelta(days=letter_from - dpd), "lawyer_letter"))
    if "credit_prenotice" in kinds and report_from is not None:
        steps.append((report_from, "credit_report"))
    if "disconnection_notice" in kinds and earliest_disconnection is not None:
        steps.append((earliest_disconnection, "disconnection"))
    if not steps:
        return "", None
    on, step = min(steps)
    return step, on


def call_rank(segment: str, outstanding_fen: int, account_id: str, policy: Policy) -> tuple:
    """Sort key of the call list: segment priority, then the larger outstanding, then the id."""
    order = policy.segments.call_priority
    return (order.index(segment) if segment in order else len(order), -outstanding_fen,
            account_id.encode())
