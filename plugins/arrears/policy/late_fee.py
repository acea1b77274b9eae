"""Late fee (违约金): shown in notices and letters, never charged back (CONTRACT §2)."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from arrears.model import OpenBill
from arrears.money import to_fen
from arrears.policy.config import Policy


def daily_rate(customer_class: str, bill_period: str, cycle_date: date, policy: Policy) -> Decimal:
    if customer_class == "residential":
        return policy.residential_rate
    # Non-residential: a bill of an earlier calendar year than D carries the higher rate.
    if int(bill_period[:4]) < cycle_date.year:
        return policy.non_residential_prior_rate
    return policy.non_residential_current_rate


def bill_late_fee(bill: OpenBill, customer_class: str, cycle_date: date,
                  policy: Policy) -> tuple[int, int]:
    """(days, fee in fen) for one bill: days from the day after due_date up to D inclusive."""
    days = max((cycle_date - bill.due_date).days, 0)
    if days == 0 or bill.open_fen <= 0:
        return days, 0
    rate = daily_rate(customer_class, bill.bill_period, cycle_date, policy)
    return days, to_fen(Decimal(bill.open_fen) / 100 * rate * days)


def account_late_fee(bills: Iterable[OpenBill], customer_class: str, cycle_date: date,
                     policy: Policy) -> tuple[int, tuple[tuple[str, int, int], ...]]:
    """(account total in fen, per-bill (bill_id, days, fee)); a positive total under the
    minimum becomes the minimum."""
    per_bill = tuple((b.bill_id, *bill_late_fee(b, customer_class, cycle_date, policy))
                     for b in bills)
    total = sum(fee for _, _, fee in per_bill)
    if 0 < total < policy.late_fee_minimum_fen:
        total = policy.late_fee_minimum_fen
    return total, per_bill
