"""CONTRACT §2: stages by DPD of the oldest unpaid bill, and the below-threshold rule."""
from datetime import timedelta

import pytest

from arrears.policy import days_past_due, stage_for
from factories import D, POLICY, bill, decide_one


@pytest.mark.parametrize("dpd, stage", [
    (-5, "current"), (0, "current"), (1, "reminder"), (7, "reminder"), (8, "formal_notice"),
    (30, "formal_notice"), (31, "escalation"), (400, "escalation"),
])
def test_stage_bands(dpd, stage):
    decision = decide_one(bills=[bill(D - timedelta(days=dpd))])
    assert decision.stage == stage
    assert decision.dpd == max(dpd, 0)


def test_dpd_counts_from_the_oldest_bill_still_unpaid():
    bills = [bill(D - timedelta(days=40), 0, "paid"), bill(D - timedelta(days=10), 500, "open"),
             bill(D - timedelta(days=3), 500, "newer")]
    assert days_past_due(bills, D) == 10
    assert decide_one(bills=bills).stage == "formal_notice"


def test_nothing_unpaid_is_current():
    assert days_past_due([], D) == 0
    assert stage_for(0, POLICY) == "current"
    decision = decide_one(bills=[bill(D + timedelta(days=3))])
    assert decision.stage == "current" and decision.actions == ()


def test_below_threshold_takes_no_action_but_keeps_its_stage():
    decision = decide_one(bills=[bill(D - timedelta(days=45), 99)])
    assert decision.stage == "escalation"
    assert "below_threshold" in decision.holds
    assert decision.actions == ()


def test_exactly_the_threshold_is_actioned():
    decision = decide_one(bills=[bill(D - timedelta(days=3), 100)])
    assert "below_threshold" not in decision.holds
    assert decision.actions == ("email", "sms")


def test_outstanding_sums_all_open_bills():
    decision = decide_one(bills=[bill(D - timedelta(days=3), 60, "b1"), bill(D - timedelta(days=1), 50, "b2")])
    assert decision.outstanding_fen == 110
    assert "below_threshold" not in decision.holds


def test_reminder_and_formal_notice_actions():
    reminder = decide_one(bills=[bill(D - timedelta(days=2))])
    assert reminder.actions == ("email", "sms") and reminder.message_kinds == ("reminder",)
    formal = decide_one(bills=[bill(D - timedelta(days=9))])
    assert formal.actions == ("email", "sms", "call_list")
    assert formal.message_kinds == ("formal_notice",)


def test_escalation_entry_actions():
    decision = decide_one(bills=[bill(D - timedelta(days=65), 50_000)])
    assert decision.actions == ("email", "sms", "credit_prenotice", "lawyer_letter",
                                "disconnection_notice", "field_visit")
    assert decision.message_kinds == ("credit_prenotice", "disconnection_notice")
    assert decision.policy_version == POLICY.version
    assert any(r.startswith("lawyer_letter:") for r in decision.reasons)


def test_portfolio_override_changes_only_what_it_names(tmp_path):
    from arrears.paths import POLICY_DIR
    from arrears.policy.config import load_policy
    (tmp_path / "default.toml").write_text((POLICY_DIR / "default.toml").read_text())
    (tmp_path / "loans.toml").write_text('version = "loans-1"\n[stages]\nescalation_from = 61\n')
    loans = load_policy("loans", tmp_path)
    assert loans.version == "loans-1" and loans.escalation_from == 61
    assert loans.formal_notice_from == POLICY.formal_notice_from
    assert stage_for(45, loans) == "formal_notice"


def test_missing_portfolio_is_a_clear_error(tmp_path):
    from arrears.policy.config import PolicyError, load_policy
    with pytest.raises(PolicyError, match="no policy file"):
        load_policy("nope", tmp_path)
