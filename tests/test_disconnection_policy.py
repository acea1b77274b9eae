"""Disconnection rules of the pure policy (CONTRACT §2) and the business-day calendar."""
from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest

from arrears.model import History, Notice
from arrears.policy import load_policy
from arrears.policy.business_days import BusinessCalendar
from factories import CALENDAR, POLICY, account, bill, decide_one, event

D = date(2026, 11, 16)                       # a Monday
ESCALATION = [bill(D - timedelta(days=45), 50_000)]
NOTICE = Notice("DN-20261106-A1", date(2026, 11, 6), date(2026, 11, 13))


def pending(notice: Notice = NOTICE, **kw) -> History:
    """A notice served in the account's current escalation spell (entered well before it)."""
    spell = {"previous_stage": "escalation", "stage_entered_on": date(2026, 10, 1)}
    return History(pending_notice=notice, **{**spell, **kw})


# --- notices --------------------------------------------------------------------------------------

def test_notice_served_to_escalation_account_with_100_or_more():
    d = decide_one(bills=[bill(D - timedelta(days=31), 10_000)])
    assert d.stage == "escalation"
    assert "disconnection_notice" in d.actions and "disconnection_notice" in d.message_kinds
    assert "disconnection_notice:earliest_2026-11-23" in d.reasons  # 16 + 7 = Mon 23 Nov


def test_no_notice_below_100():
    d = decide_one(bills=[bill(D - timedelta(days=45), 9_999)])
    assert "disconnection_notice" not in d.actions
    assert "disconnection:below_minimum" in d.reasons


def test_no_notice_before_escalation():
    d = decide_one(bills=[bill(D - timedelta(days=30), 50_000)])
    assert d.stage == "formal_notice" and "disconnection_notice" not in d.actions


@pytest.mark.parametrize("kind, extra", [
    ("dispute_opened", {}),
    ("promise_to_pay", {"until": D + timedelta(days=5)}),
    ("payment_plan", {"until": D + timedelta(days=60)}),
    ("deceased", {}),
])
def test_case_holds_stop_the_notice(kind, extra):
    d = decide_one(bills=ESCALATION, events=[event(kind, D - timedelta(days=1), **extra)])
    assert "disconnection_notice" not in d.actions


@pytest.mark.parametrize("protections, on", [
    ("medical_device", D), ("low_income", date(2026, 12, 7)), ("five_guarantee", date(2027, 2, 1)),
])
def test_protections_stop_the_notice(protections, on):
    d = decide_one(account(protections=protections), bills=[bill(on - timedelta(days=45), 50_000)], on=on)
    assert "disconnection_notice" not in d.actions
    assert any(r.startswith("disconnection:protected:") for r in d.reasons)


def test_notice_waits_for_a_message_channel():
    d = decide_one(account(opt_out="email;sms"), bills=ESCALATION)
    assert "disconnection_notice" not in d.actions
    assert "disconnection_notice:waits_for_a_message_channel" in d.reasons


def test_no_second_notice_while_one_is_pending():
    d = decide_one(bills=ESCALATION, history=pending(Notice("DN-x", D - timedelta(days=2), D + timedelta(days=5))))
    assert "disconnection_notice" not in d.actions and "disconnection_order" not in d.actions


def test_no_new_notice_after_an_order_in_the_same_escalation_spell():
    spell = History(previous_stage="escalation", stage_entered_on=D - timedelta(days=14),
                    order_released_on=D - timedelta(days=3))
    d = decide_one(bills=ESCALATION, history=spell)
    assert "disconnection_notice" not in d.actions
    assert f"disconnection:order_released_{D - timedelta(days=3)}" in d.reasons
    # A new spell (the account left escalation after the order) gets a new notice.
    later = dataclasses.replace(spell, stage_entered_on=D - timedelta(days=1))
    assert "disconnection_notice" in decide_one(bills=ESCALATION, history=later).actions


# --- proposed orders ------------------------------------------------------------------------------

def test_order_proposed_on_and_after_the_earliest_date_only():
    before = decide_one(bills=ESCALATION, history=pending(), on=date(2026, 11, 12))
    on_day = decide_one(bills=[bill(date(2026, 9, 28), 50_000)], history=pending(), on=date(2026, 11, 13))
    after = decide_one(bills=ESCALATION, history=pending())
    assert "disconnection_order" not in before.actions
    assert "disconnection_order" in on_day.actions and "disconnection_order" in after.actions
    assert f"disconnection_order:notice_{NOTICE.notice_id}" in after.reasons


def test_order_needs_the_outstanding_still_at_or_above_100():
    assert "disconnection_order" in decide_one(bills=[bill(D - timedelta(days=45), 10_000)],
                                               history=pending()).actions
    assert "disconnection_order" not in decide_one(bills=[bill(D - timedelta(days=45), 9_999)],
                                                   history=pending()).actions


def test_order_needs_the_account_still_in_escalation():
    # The oldest bill was paid: the account is back in formal notice.
    d = decide_one(bills=[bill(D - timedelta(days=20), 50_000)], history=pending())
    assert d.stage == "formal_notice" and "disconnection_order" not in d.actions


@pytest.mark.parametrize("kind, extra", [
    ("dispute_opened", {}),
    ("promise_to_pay", {"until": D + timedelta(days=5)}),
    ("payment_plan", {"until": D + timedelta(days=60)}),
    ("deceased", {}),
])
def test_no_order_under_a_case_hold(kind, extra):
    d = decide_one(bills=ESCALATION, events=[event(kind, D - timedelta(days=1), **extra)], history=pending())
    assert "disconnection_order" not in d.actions


def test_no_order_for_a_medical_device_ever():
    for on in (D, date(2027, 3, 15), date(2027, 7, 1)):
        d = decide_one(account(protections="medical_device"), bills=[bill(on - timedelta(days=45), 50_000)],
                       history=pending(), on=on)
        assert "protected_medical" in d.holds and "disconnection_order" not in d.actions


@pytest.mark.parametrize("flag", ["low_income", "five_guarantee"])
def test_winter_protection_stops_orders_in_winter_only(flag):
    for on, allowed in ((date(2026, 12, 1), False), (date(2027, 2, 28), False),
                        (date(2026, 11, 30), True)):
        d = decide_one(account(protections=flag), bills=[bill(on - timedelta(days=45), 50_000)],
                       history=pending(), on=on)
        assert ("disconnection_order" in d.actions) is allowed, on
    # The notice of November did not wait all winter: it lapsed 30 days after its earliest date,
    # so 1 March brings no order at once (a new notice first).
    d = decide_one(account(protections=flag), bills=[bill(date(2027, 1, 15), 50_000)],
                   history=pending(), on=date(2027, 3, 1))
    assert "disconnection_order" not in d.actions
    assert f"disconnection:notice_{NOTICE.notice_id}_lapsed:expired" in d.reasons


def test_a_notice_lapses_notice_valid_days_after_its_earliest_date():
    last_day = NOTICE.earliest_disconnection + timedelta(days=POLICY.notice_valid_days - 1)
    for on, order in ((last_day, True), (last_day + timedelta(days=1), False)):
        d = decide_one(bills=[bill(on - timedelta(days=45), 50_000)], history=pending(), on=on)
        assert ("disconnection_order" in d.actions) is order, on


def test_an_order_rests_only_on_a_notice_of_the_current_spell():
    d = decide_one(bills=ESCALATION, history=pending(stage_entered_on=NOTICE.served_on + timedelta(days=1)))
    assert "disconnection_order" not in d.actions
    assert f"disconnection:notice_{NOTICE.notice_id}_of_an_earlier_spell" in d.reasons


def test_a_dispute_closed_lets_the_order_through_again():
    events = [event("dispute_opened", D - timedelta(days=9)), event("dispute_closed", D - timedelta(days=1))]
    assert "disconnection_order" in decide_one(bills=ESCALATION, events=events, history=pending()).actions


def test_a_broken_promise_lets_the_order_through_again():
    events = [event("promise_to_pay", D - timedelta(days=9), until=D - timedelta(days=1))]
    assert "disconnection_order" in decide_one(bills=ESCALATION, events=events, history=pending()).actions


# --- cancellation told in the next message --------------------------------------------------------

CANCELLED = History(cancelled_notice=NOTICE)


def test_cancellation_rides_on_the_next_message_of_an_account_still_in_arrears():
    d = decide_one(bills=[bill(D - timedelta(days=45), 5_000)], history=CANCELLED)
    assert "disconnection_cancelled" in d.message_kinds and {"email", "sms"} <= set(d.actions)


def test_cancellation_is_told_even_below_threshold_but_no_collection_action():
    d = decide_one(bills=[bill(D - timedelta(days=45), 50)], history=CANCELLED)
    assert "below_threshold" in d.holds
    assert d.message_kinds == ("disconnection_cancelled",)
    assert set(d.actions) == {"email", "sms"}


def test_cancellation_is_not_told_to_a_deceased_account_nor_on_an_opted_out_channel():
    dead = decide_one(bills=ESCALATION, events=[event("deceased", D - timedelta(days=1))], history=CANCELLED)
    assert "disconnection_cancelled" not in dead.message_kinds and not dead.actions
    sms_only = decide_one(account(opt_out="email"), bills=[bill(D - timedelta(days=45), 50)], history=CANCELLED)
    assert set(sms_only.actions) == {"sms"}


# --- business days ----------------------------------------------------------------------------------

@pytest.mark.parametrize("served, earliest", [
    (date(2026, 11, 16), date(2026, 11, 23)),   # Mon -> Mon
    (date(2026, 11, 14), date(2026, 11, 23)),   # Sat + 7 = Sat -> Mon
    (date(2026, 9, 30), date(2026, 10, 8)),     # + 7 = 7 Oct, National Day holiday -> Thu 8 Oct
    (date(2026, 9, 26), date(2026, 10, 8)),     # + 7 = Sat 3 Oct, inside the Golden Week
    (date(2026, 10, 3), date(2026, 10, 10)),    # + 7 = Sat 10 Oct, an adjusted working day (调休)
    (date(2026, 2, 7), date(2026, 2, 14)),      # + 7 = Sat 14 Feb, an adjusted working day
    (date(2026, 2, 10), date(2026, 2, 24)),     # + 7 = 17 Feb, Spring Festival -> Tue 24 Feb
])
def test_earliest_disconnection_is_the_next_business_day(served, earliest):
    assert CALENDAR.earliest_disconnection(served, POLICY.disconnection_notice_days) == earliest


def test_adjusted_working_weekend_is_a_business_day_and_a_normal_weekend_is_not():
    assert CALENDAR.is_business_day(date(2026, 10, 10))       # Saturday, 调休
    assert not CALENDAR.is_business_day(date(2026, 10, 17))   # an ordinary Saturday
    assert not CALENDAR.is_business_day(date(2026, 10, 1))    # National Day


def test_local_overrides_come_from_the_policy_file(tmp_path):
    (tmp_path / "default.toml").write_bytes((POLICY_FILE).read_bytes())
    (tmp_path / "hunan.toml").write_text(
        '[disconnection]\nextra_holidays = ["2026-11-23"]\nextra_workdays = ["2026-11-28"]\n')
    policy = load_policy("hunan", tmp_path)
    calendar = BusinessCalendar.for_policy(policy)
    assert not calendar.is_business_day(date(2026, 11, 23))   # a local holiday on a Monday
    assert calendar.is_business_day(date(2026, 11, 28))       # a local working Saturday
    assert calendar.earliest_disconnection(date(2026, 11, 16), 7) == date(2026, 11, 24)
    assert calendar.earliest_disconnection(date(2026, 11, 21), 7) == date(2026, 11, 28)
    assert BusinessCalendar().earliest_disconnection(date(2026, 11, 21), 7) == date(2026, 11, 30)
    # The decision uses the same calendar as the notice it serves.
    d = decide_one(bills=ESCALATION)  # default calendar
    assert "disconnection_notice:earliest_2026-11-23" in d.reasons


def test_bad_override_dates_say_how_to_write_them(tmp_path):
    policy = dataclasses.replace(POLICY, extra_holidays=("23/11/2026",))
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        BusinessCalendar.for_policy(policy)


from arrears.paths import POLICY_DIR  # noqa: E402

POLICY_FILE = POLICY_DIR / "default.toml"
