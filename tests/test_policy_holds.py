"""CONTRACT §2 holds: each is recorded on the decision and has its effect."""
from datetime import date, timedelta

import pytest

from factories import D, account, bill, decide_one, event

ESCALATION = [bill(D - timedelta(days=70), 50_000)]    # 500.00, DPD 70: every escalation action
REMINDER = [bill(D - timedelta(days=3), 50_000)]
ESCALATION_ACTIONS = {"credit_prenotice", "lawyer_letter", "credit_report", "disconnection_notice",
                      "disconnection_order"}


def test_no_hold_escalates():
    d = decide_one(bills=ESCALATION)
    assert d.holds == ()
    assert {"credit_prenotice", "lawyer_letter", "disconnection_notice"} <= set(d.actions)


def test_disputed_stops_escalation_and_messages_until_closed():
    opened = event("dispute_opened", D - timedelta(days=5))
    d = decide_one(bills=ESCALATION, events=[opened])
    assert d.holds == ("disputed",)
    assert not set(d.actions) & (ESCALATION_ACTIONS | {"email", "sms", "field_visit"})
    closed = event("dispute_closed", D - timedelta(days=1))
    d2 = decide_one(bills=ESCALATION, events=[opened, closed])
    assert "disputed" not in d2.holds and "lawyer_letter" in d2.actions


def test_dispute_closed_in_the_future_is_not_known_yet():
    events = [event("dispute_opened", D - timedelta(days=5)), event("dispute_closed", D + timedelta(days=1))]
    assert "disputed" in decide_one(bills=ESCALATION, events=events).holds


def test_promise_to_pay_holds_until_its_date_then_resumes():
    promise = event("promise_to_pay", D - timedelta(days=3), until=D + timedelta(days=4), amount=50_000)
    d = decide_one(bills=ESCALATION, events=[promise])
    assert d.holds == ("promise_to_pay",)
    assert not set(d.actions) & (ESCALATION_ACTIONS | {"email", "sms"})
    # The promise's date is D itself: still held.
    on_date = event("promise_to_pay", D - timedelta(days=3), until=D, amount=50_000)
    assert "promise_to_pay" in decide_one(bills=ESCALATION, events=[on_date]).holds
    broken = event("promise_to_pay", D - timedelta(days=20), until=D - timedelta(days=1), amount=50_000)
    d2 = decide_one(bills=ESCALATION, events=[broken])
    assert "promise_to_pay" not in d2.holds and "lawyer_letter" in d2.actions


def test_payment_plan_gets_reminders_only():
    plan = event("payment_plan", D - timedelta(days=10), until=D + timedelta(days=80))
    d = decide_one(bills=ESCALATION, events=[plan])
    assert d.holds == ("payment_plan",)
    assert not set(d.actions) & ESCALATION_ACTIONS
    assert d.message_kinds == ("reminder",) and {"email", "sms"} <= set(d.actions)


def test_plan_broken_ends_the_plan():
    plan = event("payment_plan", D - timedelta(days=10), until=D + timedelta(days=80))
    broken = event("plan_broken", D - timedelta(days=2))
    d = decide_one(bills=ESCALATION, events=[plan, broken])
    assert "payment_plan" not in d.holds and "lawyer_letter" in d.actions


def test_payment_plan_past_its_date_ends():
    plan = event("payment_plan", D - timedelta(days=100), until=D - timedelta(days=1))
    assert "payment_plan" not in decide_one(bills=ESCALATION, events=[plan]).holds


def test_deceased_no_contact_of_any_kind():
    d = decide_one(bills=ESCALATION, events=[event("deceased", D - timedelta(days=30))])
    assert d.holds == ("deceased",)
    assert d.actions == ()


def test_protected_medical_is_never_disconnected_but_otherwise_escalates():
    d = decide_one(account(protections="medical_device"), bills=ESCALATION)
    assert d.holds == ("protected_medical",)
    assert "disconnection_notice" not in d.actions and "lawyer_letter" in d.actions


@pytest.mark.parametrize("flag", ["low_income", "five_guarantee"])
@pytest.mark.parametrize("day, winter, notice", [
    (date(2026, 12, 1), True, False), (date(2027, 2, 28), True, False),
    (date(2028, 2, 29), True, False),
    # Late November: not yet winter, but the earliest date (7 days on) would be: no notice.
    (date(2026, 11, 30), False, False), (date(2026, 11, 24), False, False),
    (date(2026, 11, 20), False, True), (date(2027, 3, 1), False, True),
])
def test_protected_winter_1_dec_to_end_feb(flag, day, winter, notice):
    bills = [bill(day - timedelta(days=70), 50_000)]
    d = decide_one(account(protections=flag), bills=bills, on=day)
    assert ("protected_winter" in d.holds) is winter
    assert ("disconnection_notice" in d.actions) is notice
    if not winter and not notice:
        assert any(r.startswith("disconnection_notice_withheld:earliest_2026-12-")
                   and r.endswith("_protected:protected_winter") for r in d.reasons), d.reasons


@pytest.mark.parametrize("channel, other", [("email", "sms"), ("sms", "email")])
def test_opt_out_skips_that_channel_only(channel, other):
    d = decide_one(account(opt_out=channel), bills=REMINDER)
    assert d.holds == (f"opt_out_{channel}",)
    assert channel not in d.actions and other in d.actions


def test_holds_are_listed_in_contract_order():
    d = decide_one(account(protections="medical_device;low_income", opt_out="sms;email"),
                   bills=ESCALATION, events=[event("dispute_opened", D - timedelta(days=1))],
                   on=date(2026, 12, 10))
    assert d.holds == ("disputed", "protected_medical", "protected_winter", "opt_out_email", "opt_out_sms")
