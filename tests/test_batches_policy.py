"""The policy gates behind the escalation batches (CONTRACT §2), on arrears.policy.decide itself:
the credit report's pre-notice gate, once per calendar month and escalation holds; the lawyer
letter's DPD and amount floors and its 30-day rule."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from factories import D, account, bill, decide_one, event
from arrears.model import History

ENTERED = D - timedelta(days=20)  # the account entered escalation 20 days before D


def escalation(**history) -> History:
    return History(previous_stage="escalation", stage_entered_on=ENTERED, **history)


def decided(dpd: int = 45, fen: int = 50_000, events=(), **history):
    return decide_one(bills=[bill(D - timedelta(days=dpd), fen)], events=events,
                      history=escalation(**history))


@pytest.mark.parametrize("days_before, reported", [(6, False), (7, True), (15, True)])
def test_credit_report_needs_a_prenotice_at_least_seven_days_before(days_before, reported):
    d = decided(prenotices=(D - timedelta(days=days_before),))
    assert ("credit_report" in d.actions) is reported
    if not reported:
        assert any(r.startswith("credit_report:prenotice_") and r.endswith("_too_recent") for r in d.reasons)


def test_no_credit_report_without_a_prenotice_in_this_escalation_spell():
    assert "credit_report" not in decided().actions
    # A pre-notice from an earlier spell (before this escalation entry) does not count.
    old = decided(prenotices=(ENTERED - timedelta(days=40),))
    assert "credit_report" not in old.actions
    assert "credit_report:no_prenotice_served" in old.reasons


@pytest.mark.parametrize("last_report, reported", [
    (date(2026, 11, 2), False),    # same calendar month as D (2026-11-16)
    (date(2026, 10, 31), True),    # previous month, only 16 days ago: a new month counts
    (date(2025, 11, 16), True),    # same month number, other year
])
def test_credit_report_once_per_calendar_month(last_report, reported):
    d = decided(prenotices=(D - timedelta(days=10),), credit_reports=(last_report,))
    assert ("credit_report" in d.actions) is reported


@pytest.mark.parametrize("hold_event", [
    event("dispute_opened", D - timedelta(days=3)),
    event("promise_to_pay", D - timedelta(days=2), until=D + timedelta(days=5), amount=10_000),
    event("payment_plan", D - timedelta(days=2), until=D + timedelta(days=60)),
    event("deceased", D - timedelta(days=30)),
])
def test_no_credit_report_or_letter_under_an_escalation_hold(hold_event):
    d = decided(dpd=90, prenotices=(D - timedelta(days=10),), events=[hold_event])
    assert "credit_report" not in d.actions and "lawyer_letter" not in d.actions


def test_protections_do_not_stop_the_credit_report():
    d = decide_one(account(protections="medical_device;low_income"),
                   bills=[bill(D - timedelta(days=45), 50_000)],
                   history=escalation(prenotices=(D - timedelta(days=10),)))
    assert "credit_report" in d.actions


@pytest.mark.parametrize("dpd, fen, letter", [
    (59, 100_000, False), (60, 100_000, True),      # DPD floor
    (90, 19_999, False), (90, 20_000, True),        # outstanding floor 200.00
])
def test_lawyer_letter_floors(dpd, fen, letter):
    assert ("lawyer_letter" in decided(dpd=dpd, fen=fen).actions) is letter


@pytest.mark.parametrize("days_since_last, letter", [(1, False), (29, False), (30, True), (45, True)])
def test_lawyer_letter_at_most_once_per_thirty_days(days_since_last, letter):
    d = decided(dpd=90, fen=100_000, lawyer_letters=(D - timedelta(days=days_since_last),))
    assert ("lawyer_letter" in d.actions) is letter
    if not letter:
        assert f"lawyer_letter:last_sent_{D - timedelta(days=days_since_last)}" in d.reasons
