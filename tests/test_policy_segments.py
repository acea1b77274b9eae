"""Customer segments (CONTRACT §6): each rule with a history built by hand, the order of
precedence, the segment's timing and waiver, and a property test that no segment ever loosens a
hold, a protection or a contact limit."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.model import SEGMENTS, History, Payment, SegmentFacts
from arrears.policy.config import PolicyError, policy_from_dict
from arrears.policy.holds import STOPS_CONTACT, STOPS_DISCONNECTION, STOPS_ESCALATION, STOPS_MESSAGES
from arrears.policy.segments import segment
from factories import POLICY, D, account, bill, decide_one, event

RULES = POLICY.segments
ago = lambda n: D - timedelta(days=n)  # noqa: E731


def seg(acct=None, events=(), facts=SegmentFacts(), dpd=40):
    return segment(acct or account(), list(events), facts, dpd, D, RULES)


# --- each rule on its own ----------------------------------------------------------------------

def test_disputing_an_open_dispute_however_old():
    assert seg(events=[event("dispute_opened", ago(400))]) == ("disputing", "segment:disputing:dispute_open")


def test_disputing_a_dispute_closed_within_90_days_but_not_before():
    closed = [event("dispute_opened", ago(200)), event("dispute_closed", ago(90))]
    assert seg(events=closed) == ("disputing", f"segment:disputing:dispute_closed_{ago(90)}")
    older = [event("dispute_opened", ago(200)), event("dispute_closed", ago(91))]
    assert seg(events=older)[0] == "new"


def test_a_dispute_not_yet_effective_on_d_does_not_count():
    assert seg(events=[event("dispute_opened", D + timedelta(days=1))])[0] == "new"


@pytest.mark.parametrize("protection", ["low_income", "five_guarantee"])
def test_hardship_by_protection(protection):
    assert seg(account(protections={protection})) == ("hardship", f"segment:hardship:{protection}")


def test_medical_device_alone_is_not_hardship():
    assert seg(account(protections={"medical_device"}))[0] == "new"


def test_hardship_a_payment_plan_within_180_days():
    assert seg(events=[event("payment_plan", ago(180), until=ago(120))]) == (
        "hardship", f"segment:hardship:payment_plan_{ago(180)}")
    # A plan agreed before the window does not count, however long it ran.
    assert seg(events=[event("payment_plan", ago(181), until=ago(10))])[0] == "new"


def test_hardship_two_part_payments_within_90_days():
    two = SegmentFacts(payments=(Payment(ago(10), True), Payment(ago(90), True)))
    assert seg(facts=two) == ("hardship", "segment:hardship:part_payments_2_in_90_days")
    one_old = SegmentFacts(payments=(Payment(ago(10), True), Payment(ago(91), True)))
    assert seg(facts=one_old)[0] == "new"
    # A payment that cleared the arrears is not a part payment.
    full = SegmentFacts(payments=(Payment(ago(10), True), Payment(ago(20), False)))
    assert seg(facts=full)[0] == "new"


def test_wilful_two_broken_promises_or_plans_within_180_days():
    facts = SegmentFacts(broken_promises=(ago(100),))
    assert seg(facts=facts)[0] == "new"
    assert seg(events=[event("plan_broken", ago(30))], facts=facts) == (
        "wilful", "segment:wilful:broken_2_in_180_days")
    assert seg(facts=SegmentFacts(broken_promises=(ago(100), ago(181))))[0] == "new"


def test_a_plan_broken_by_a_missed_instalment_counts_as_a_broken_plan():
    from arrears.model import CaseEvent
    facts = SegmentFacts(broken_promises=(ago(100),))
    assert seg(facts=dataclasses.replace(facts, broken_plans=(ago(10),)))[0] == "wilful"
    # Through the decision: a plan whose instalment of D-20 went unpaid past the grace days.
    # (agreed 200 days ago, so not hardship by the plan rule)
    plan = CaseEvent("EP", "payment_plan", ago(200), 30_000, D + timedelta(days=60),
                     instalments=((ago(20), 10_000), (D + timedelta(days=10), 20_000)))
    history = History(segment_facts=facts)
    d = decide_one(bills=[bill(ago(40), 30_000)], events=[plan], history=history)
    assert "plan_broken:instalment_" + ago(20).isoformat() in d.reasons
    assert d.segment == "wilful" and "segment:wilful:broken_2_in_180_days" in d.reasons


def test_wilful_dpd_90_and_no_payment_in_the_90_days_after_a_served_notice():
    served = SegmentFacts(notices_served=(ago(95),))
    assert seg(facts=served, dpd=90) == (
        "wilful", f"segment:wilful:dpd_90_no_payment_90_days_after_notice_{ago(95)}")
    assert seg(facts=served, dpd=89)[0] == "new"
    # A payment in the 90 days after service: not wilful.
    paid = dataclasses.replace(served, payments=(Payment(ago(50), True),))
    assert seg(facts=paid, dpd=120)[0] == "new"
    # The 90 days have not run out yet: not (yet) wilful.
    assert seg(facts=SegmentFacts(notices_served=(ago(60),)), dpd=120)[0] == "new"


def test_forgetful_paid_within_7_days_of_a_reminder_in_the_last_180_days():
    facts = SegmentFacts(reminders=(ago(40),), payments=(Payment(ago(33), False),))
    assert seg(facts=facts) == ("forgetful", f"segment:forgetful:paid_{ago(33)}_after_reminder_{ago(40)}")
    late = SegmentFacts(reminders=(ago(40),), payments=(Payment(ago(32), False),))
    assert seg(facts=late)[0] == "new"
    old = SegmentFacts(reminders=(ago(190),), payments=(Payment(ago(185), False),))
    assert seg(facts=old)[0] == "new"


def test_new_when_no_rule_applies():
    assert seg() == ("new", "segment:new:no_rule_applies")


# --- precedence: disputing > hardship > wilful > forgetful > new -------------------------------

def test_order_of_precedence():
    forgetful = SegmentFacts(reminders=(ago(40),), payments=(Payment(ago(35), False),))
    wilful = dataclasses.replace(forgetful, broken_promises=(ago(20), ago(60)))
    hardship = account(protections={"low_income"})
    dispute = [event("dispute_opened", ago(5))]
    assert seg(facts=forgetful)[0] == "forgetful"
    assert seg(facts=wilful)[0] == "wilful"
    assert seg(hardship, facts=wilful)[0] == "hardship"
    assert seg(hardship, dispute, wilful)[0] == "disputing"


def test_thresholds_come_from_the_policy_per_portfolio():
    raw = _raw_default()
    raw["segments"] = {"part_payments_min": 3, "dispute_days": 30}
    rules = policy_from_dict(raw).segments
    two = SegmentFacts(payments=(Payment(ago(10), True), Payment(ago(20), True)))
    assert segment(account(), [], two, 40, D, rules)[0] == "new"
    closed = [event("dispute_opened", ago(100)), event("dispute_closed", ago(45))]
    assert segment(account(), closed, SegmentFacts(), 40, D, rules)[0] == "new"
    assert segment(account(), closed, SegmentFacts(), 40, D, RULES)[0] == "disputing"


def test_a_malformed_segments_table_is_refused_with_what_to_do():
    for bad in ({"nonsense": 1}, {"call_priority": ["wilful"]},
                {"lawyer_letter_min_dpd": {"grumpy": 10}}, {"hardship_protections": ["rich"]}):
        raw = _raw_default()
        raw["segments"] = bad
        with pytest.raises(PolicyError):
            policy_from_dict(raw)
    raw = _raw_default()
    raw["late_fee"]["waive_for"] = ["vip"]
    with pytest.raises(PolicyError, match="waive_for"):
        policy_from_dict(raw)


def _raw_default() -> dict:
    import tomllib

    from arrears.paths import POLICY_DIR
    return tomllib.loads((POLICY_DIR / "default.toml").read_text(encoding="utf-8"))


# --- the decision carries the segment; timing and waiver ----------------------------------------

WILFUL = History(segment_facts=SegmentFacts(broken_promises=(ago(20), ago(60))))
FORGETFUL = History(segment_facts=SegmentFacts(reminders=(ago(100),), payments=(Payment(ago(95), False),)))


def test_every_decision_carries_its_segment_and_the_rule_as_a_reason():
    d = decide_one(bills=[bill(ago(10), 20_000)], history=WILFUL)
    assert d.segment == "wilful" and "segment:wilful:broken_2_in_180_days" in d.reasons
    assert decide_one(bills=[bill(ago(10), 20_000)]).segment == "new"


@pytest.mark.parametrize("dpd", [44, 45, 59, 60])
def test_wilful_gets_the_lawyer_letter_from_dpd_45_forgetful_from_60(dpd):
    bills = [bill(ago(dpd), 50_000)]
    wilful = decide_one(bills=bills, history=WILFUL)
    forgetful = decide_one(bills=bills, history=FORGETFUL)
    assert forgetful.segment == "forgetful" and wilful.segment == "wilful"
    assert ("lawyer_letter" in wilful.actions) == (dpd >= 45)
    assert ("lawyer_letter" in forgetful.actions) == (dpd >= 60)
    if 45 <= dpd < 60:
        assert "lawyer_letter:wilful_from_dpd_45" in wilful.reasons


def test_wilful_letter_still_needs_the_amount_floor_and_respects_the_holds():
    assert "lawyer_letter" not in decide_one(bills=[bill(ago(50), 19_999)], history=WILFUL).actions
    held = decide_one(bills=[bill(ago(50), 50_000)], history=WILFUL,
                      events=[event("promise_to_pay", ago(2), until=D + timedelta(days=5))])
    assert "lawyer_letter" not in held.actions


def test_the_wilful_letter_dpd_is_configurable():
    raw = _raw_default()
    raw["segments"] = {"lawyer_letter_min_dpd": {"wilful": 50}}
    policy = policy_from_dict(raw)
    from arrears.policy import decide_account
    from factories import earliest
    d47 = decide_account(account(), [bill(ago(47), 50_000)], [], WILFUL, D, policy, earliest)
    d50 = decide_account(account(), [bill(ago(50), 50_000)], [], WILFUL, D, policy, earliest)
    assert "lawyer_letter" not in d47.actions and "lawyer_letter" in d50.actions


@pytest.mark.parametrize("waive_for, protections, shown_waived", [
    ([], {"low_income"}, False),
    (["low_income", "five_guarantee"], {"five_guarantee"}, True),
    (["low_income", "five_guarantee"], set(), False),
    (["hardship"], {"low_income"}, True),
])
def test_late_fee_waiver_by_protection_or_segment(waive_for, protections, shown_waived):
    raw = _raw_default()
    raw["late_fee"]["waive_for"] = waive_for
    policy = policy_from_dict(raw)
    from arrears.policy import decide_account
    from factories import earliest
    d = decide_account(account(protections=protections), [bill(ago(20), 20_000)], [], History(), D, policy,
               earliest)
    assert d.late_fee_fen > 0 and d.late_fee_waived == shown_waived
    codes = [r for r in d.reasons if r.startswith("late_fee:waived:")]
    assert codes == ([f"late_fee:waived:{next(iter(protections)) if 'hardship' not in waive_for else 'hardship'}"]
                     if shown_waived else [])


# --- no segment loosens a hold, a protection or a contact limit --------------------------------

days_back = st.integers(min_value=0, max_value=400).map(ago)
event_types = st.sampled_from(["dispute_opened", "dispute_closed", "promise_to_pay", "payment_plan",
                               "plan_broken", "deceased"])


@st.composite
def cases(draw):
    n_events = draw(st.integers(0, 5))
    events = []
    for i in range(n_events):
        kind = draw(event_types)
        eff = draw(days_back)
        until = eff + timedelta(days=draw(st.integers(0, 60))) if kind in ("promise_to_pay", "payment_plan") else None
        events.append(event(kind, eff, until=until, event_id=f"E{i}"))
    facts = SegmentFacts(
        payments=tuple(Payment(draw(days_back), draw(st.booleans())) for _ in range(draw(st.integers(0, 4)))),
        reminders=tuple(draw(st.lists(days_back, max_size=3))),
        notices_served=tuple(sorted(set(draw(st.lists(days_back, max_size=2))))),
        broken_promises=tuple(draw(st.lists(days_back, max_size=3))))
    messages = tuple((ago(draw(st.integers(1, 9))), draw(st.sampled_from(["email", "sms"])))
                     for _ in range(draw(st.integers(0, 4))))
    history = History(previous_stage=draw(st.sampled_from([None, "reminder", "formal_notice", "escalation"])),
                      stage_entered_on=ago(draw(st.integers(0, 60))), messages=messages,
                      prenotices=tuple(draw(st.lists(days_back, max_size=2))),
                      lawyer_letters=tuple(draw(st.lists(days_back, max_size=1))),
                      segment_facts=facts)
    acct = account(protections=draw(st.sets(st.sampled_from(["medical_device", "low_income", "five_guarantee"]))),
                   opt_out=draw(st.sets(st.sampled_from(["email", "sms"]))),
                   email=draw(st.sampled_from(["", "a1@example.com"])))
    dpd = draw(st.integers(0, 200))
    amount = draw(st.integers(50, 200_000))
    on = D + timedelta(days=draw(st.integers(0, 120)))  # winter and not
    return acct, [bill(on - timedelta(days=dpd), amount)], events, history, on


@settings(max_examples=400, deadline=None)
@given(cases())
def test_no_segment_loosens_a_hold_a_protection_or_a_contact_limit(case):
    acct, bills, events, history, on = case
    base = decide_one(acct, bills, events, history, on=on)
    for s in SEGMENTS:
        from arrears.policy import decide_account
        from factories import earliest
        d = decide_account(acct, list(bills), list(events), history, on, POLICY, earliest, segment_as=s)
        holds = set(d.holds)
        # The same holds, the same channels (contact limits, opt-outs, gaps) as any other segment.
        assert d.holds == base.holds
        assert {"email", "sms"} & set(d.actions) == {"email", "sms"} & set(base.actions)
        # Only the lawyer letter's timing may differ, and only towards §6's DPD 45.
        assert set(d.actions) ^ set(base.actions) <= {"lawyer_letter"}
        assert d.message_kinds == base.message_kinds
        if holds & STOPS_MESSAGES:
            assert not {"email", "sms"} & set(d.actions)
        if holds & STOPS_ESCALATION:
            assert not {"credit_prenotice", "credit_report", "lawyer_letter", "disconnection_notice",
                        "disconnection_order"} & set(d.actions)
        if holds & STOPS_DISCONNECTION:
            assert not {"disconnection_notice", "disconnection_order"} & set(d.actions)
        if holds & STOPS_CONTACT:
            assert not {"call_list", "field_visit"} & set(d.actions)
        if "lawyer_letter" in d.actions:
            assert d.dpd >= 45 and d.outstanding_fen >= POLICY.lawyer_min_outstanding_fen
