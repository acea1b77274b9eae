"""CONTRACT §2 late fee (违约金): rates per class, cross-year, rounding, ¥1 minimum."""
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.policy import account_late_fee, bill_late_fee
from factories import POLICY, bill

D = date(2026, 11, 16)


def test_residential_point_one_percent_per_day():
    b = bill(D - timedelta(days=10), 100_000)  # 1000.00 for 10 days
    assert bill_late_fee(b, "residential", D, POLICY) == (10, 1000)  # 10.00


def test_days_counted_from_the_day_after_due_date_up_to_d():
    assert bill_late_fee(bill(D, 100_000), "residential", D, POLICY) == (0, 0)
    assert bill_late_fee(bill(D - timedelta(days=1), 100_000), "residential", D, POLICY) == (1, 100)


def test_non_residential_current_year_point_two_percent():
    b = bill(D - timedelta(days=10), 100_000, period="2026-09")
    assert bill_late_fee(b, "non_residential", D, POLICY) == (10, 2000)


def test_non_residential_prior_year_bill_point_three_percent():
    b = bill(D - timedelta(days=10), 100_000, period="2025-12")
    assert bill_late_fee(b, "non_residential", D, POLICY) == (10, 3000)


def test_cross_year_uses_bill_period_not_due_date():
    # Bill of Dec 2025, due in Jan 2026, on D in 2026: prior-year rate.
    b = bill(date(2026, 1, 15), 100_000, period="2025-12")
    days = (D - date(2026, 1, 15)).days
    assert bill_late_fee(b, "non_residential", D, POLICY) == (days, days * 300)
    # The same for a residential customer: one rate whatever the year.
    assert bill_late_fee(b, "residential", D, POLICY) == (days, days * 100)


def test_rounded_half_up_per_bill_then_summed():
    # 0.05 * 0.001 * 10 = 0.0005 CNY -> 0.00; 12.35 * 0.001 * 4 = 0.0494 -> 0.05 (half-up of 4.94 fen)
    b1 = bill(D - timedelta(days=4), 1235, "b1")
    assert bill_late_fee(b1, "residential", D, POLICY) == (4, 5)
    # 2.50 fen exactly -> 3 fen (half-up, not banker's)
    b2 = bill(D - timedelta(days=5), 500, "b2")   # 5.00 * 0.001 * 5 = 0.025 CNY = 2.5 fen
    assert bill_late_fee(b2, "residential", D, POLICY) == (5, 3)


def test_positive_total_under_one_yuan_becomes_one_yuan():
    total, per_bill = account_late_fee([bill(D - timedelta(days=2), 5_000)], "residential", D, POLICY)
    assert [fee for _, _, fee in per_bill] == [10]
    assert total == 100


def test_zero_total_stays_zero():
    total, _ = account_late_fee([bill(D + timedelta(days=5), 5_000)], "residential", D, POLICY)
    assert total == 0


def test_account_total_is_the_sum_of_bills():
    bills = [bill(D - timedelta(days=20), 200_000, "b1", "2026-09"),
             bill(D - timedelta(days=10), 100_000, "b2", "2025-11")]
    total, per_bill = account_late_fee(bills, "non_residential", D, POLICY)
    assert per_bill == (("b1", 20, 8000), ("b2", 10, 3000))
    assert total == 11_000


# The fee is computed in integers (issue 13: a Decimal per operation cost microseconds an account);
# it must equal the Decimal definition, money.to_fen(open / 100 x rate x days), for every amount
# the ingest accepts (under 10^12 CNY) and daily rates of up to 7 significant digits.
@given(open_fen=st.integers(1, 10**14 - 1), days=st.integers(1, 40_000),
       rate=st.decimals(min_value=0, max_value=1, places=7, allow_nan=False, allow_infinity=False))
@settings(max_examples=500, deadline=None)
def test_integer_fee_equals_the_decimal_definition(open_fen, days, rate):
    from dataclasses import replace
    from decimal import Decimal
    from arrears.money import to_fen
    policy = replace(POLICY, residential_rate=rate)
    b = bill(D - timedelta(days=days), open_fen)
    assert bill_late_fee(b, "residential", D, policy) == (days, to_fen(Decimal(open_fen) / 100 * rate * days))
