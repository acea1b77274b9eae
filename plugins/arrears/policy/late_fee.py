"""Late fee (违约金): shown in notices and letters, never charged back (CONTRACT §2)."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from functools import lru_cache

from arrears.model import OpenBill
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
    """(days, fee in fen) for one bill: days from the day after due_date up to D inclusive; the
    fee is open amount x daily rate x days, rounded half-up to the fen."""
    days = max((cycle_date - bill.due_date).days, 0)
    if days == 0 or bill.open_fen <= 0:
        return days, 0
    rate, per = _fraction(daily_rate(customer_class, bill.bill_period, cycle_date, policy))
    return days, _half_up(bill.open_fen * rate * days, per)


# The fee in exact integers (the rate as a fraction): what money.to_fen gives on the same Decimal
# product (tests/test_policy_late_fee.py), without a Decimal per operation a million times a cycle.
@lru_cache(maxsize=64)
def _fraction(rate: Decimal) -> tuple[int, int]:
    return rate.as_integer_ratio()


def _half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator (denominator > 0) rounded to an integer, halves away from zero."""
    whole = (2 * abs(numerator) + denominator) // (2 * denominator)
    return whole if numerator >= 0 else -whole


def account_late_fee(bills: Iterable[OpenBill], customer_class: str, cycle_date: date,
                     policy: Policy) -> tuple[int, tuple[tuple[str, int, int], ...]]:
    """(account total in fen, per-bill (bill_id, days, fee)); a positive total under the
    minimum becomes the minimum."""
    per_bill, total = [], 0
    for b in bills:  # a loop, not generators: this runs for every account of every cycle
        days, fee = bill_late_fee(b, customer_class, cycle_date, policy)
        per_bill.append((b.bill_id, days, fee))
        total += fee
    if 0 < total < policy.late_fee_minimum_fen:
        total = policy.late_fee_minimum_fen
    return total, tuple(per_bill)
