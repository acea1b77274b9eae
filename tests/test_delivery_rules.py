"""CONTRACT §2 contact limits, proven on the policy (plan_channels / decide) and, where the rule
lives in delivery, on the dispatcher: 7-day repeat per stage, 3 in any 7 cycle dates across
channels, opt-outs, invalid contact details, holds, own contact details only, contact window."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pytest
from sqlalchemy import text

from arrears.delivery.dispatch import in_window
from arrears.model import History
from arrears.policy.decide import plan_channels
from factories import D, POLICY, account, bill, decide_one, event

REMINDER = [bill(D - timedelta(days=3), 20_000)]          # DPD 3
FORMAL = [bill(D - timedelta(days=20), 20_000)]           # DPD 20


def history(stage="reminder", entered=D - timedelta(days=2), messages=()):
    return History(previous_stage=stage, stage_entered_on=entered, messages=tuple(messages))


def channels(acct=None, holds=frozenset(), hist=History(), entered=D):
    reasons: list[str] = []
    got = plan_channels(acct or account(), set(holds), hist, entered, D, POLICY, reasons)
    return got, reasons


def test_a_fresh_account_in_arrears_gets_email_and_sms():
    d = decide_one(bills=REMINDER)
    assert {"email", "sms"} <= set(d.actions) and d.message_kinds == ("reminder",)


@pytest.mark.parametrize("days_ago, expected", [(1, []), (6, []), (7, ["email", "sms"]), (9, ["email", "sms"])])
def test_a_channel_repeats_no_sooner_than_every_7_days_within_a_stage(days_ago, expected):
    last = D - timedelta(days=days_ago)
    hist = history(entered=D - timedelta(days=20), messages=[(last, "email"), (last, "sms")])
    got, reasons = channels(hist=hist, entered=D - timedelta(days=20))
    assert got == expected
    if not expected:
        assert f"email:repeat_wait_until_{last + timedelta(days=7)}" in reasons


def test_the_repeat_rule_is_per_channel():
    hist = history(entered=D - timedelta(days=20), messages=[(D - timedelta(days=2), "email")])
    assert channels(hist=hist, entered=D - timedelta(days=20))[0] == ["sms"]


def test_entering_a_new_stage_may_message_again_at_once():
    """Messages of the previous stage's spell do not hold back the new stage's first message."""
    hist = history(stage="reminder", entered=D - timedelta(days=7),
                   messages=[(D - timedelta(days=3), "email")])
    d = decide_one(bills=[bill(D - timedelta(days=8), 20_000)], history=hist)   # DPD 8: formal
    assert d.stage == "formal_notice" and d.stage_entered_on == D
    assert {"email", "sms"} <= set(d.actions) and d.message_kinds == ("formal_notice",)
    # ... whereas staying in the same stage, the repeat rule holds.
    same = decide_one(bills=REMINDER, history=hist)
    assert "email" not in same.actions and "sms" in same.actions


@pytest.mark.parametrize("earlier, expected", [
    (0, ["email", "sms"]), (1, ["email", "sms"]), (2, ["email"]), (3, [])])
def test_at_most_3_messages_in_any_7_consecutive_cycle_dates_across_channels(earlier, expected):
    # Earlier messages in D-6 .. D-1, each of an earlier stage spell (so the repeat rule is quiet).
    msgs = [(D - timedelta(days=6 - i), "email" if i % 2 else "sms") for i in range(earlier)]
    hist = history(stage="current", entered=D - timedelta(days=30), messages=msgs)
    got, reasons = channels(hist=hist, entered=D)
    assert got == expected
    if len(expected) < 2:
        assert any(r.endswith("cap_3_in_7_days") for r in reasons)


def test_messages_older_than_the_7_day_window_do_not_count_to_the_cap():
    msgs = [(D - timedelta(days=7), "email"), (D - timedelta(days=7), "sms"), (D - timedelta(days=8), "sms")]
    assert channels(hist=history(stage="current", messages=msgs), entered=D)[0] == ["email", "sms"]


def test_the_cap_over_a_fortnight_of_daily_cycles_never_exceeds_3_in_7():
    """Walk 14 cycle dates with stage changes that would each allow a message; count."""
    sent: list[tuple[date, str]] = []
    stages = ["reminder"] * 7 + ["formal_notice"] * 7
    for offset in range(14):
        day = D + timedelta(days=offset)
        entered = D if stages[offset] == "reminder" else D + timedelta(days=7)
        reasons: list[str] = []
        for ch in plan_channels(account(), set(), History(messages=tuple(sent)), entered, day,
                                POLICY, reasons):
            sent.append((day, ch))
    for offset in range(14):
        end = D + timedelta(days=offset)
        assert sum(1 for day, _ in sent if end - timedelta(days=6) <= day <= end) <= 3
    assert sent == [(D, "email"), (D, "sms"), (D + timedelta(days=7), "email"),
                    (D + timedelta(days=7), "sms")]


@pytest.mark.parametrize("opted, left", [("email", ["sms"]), ("sms", ["email"]), ("email;sms", [])])
def test_an_opted_out_channel_is_skipped_and_the_others_still_used(opted, left):
    d = decide_one(account(opt_out=opted), bills=REMINDER)
    assert [c for c in ("email", "sms") if c in d.actions] == left
    for channel in opted.split(";"):
        assert f"opt_out_{channel}" in d.holds and f"{channel}:opted_out" in d.reasons


@pytest.mark.parametrize("missing, left", [("email", ["sms"]), ("mobile", ["email"])])
def test_missing_or_invalid_contact_details_are_a_gap_not_an_error(missing, left):
    d = decide_one(account(**{missing: ""}), bills=REMINDER)
    assert [c for c in ("email", "sms") if c in d.actions] == left
    gap = "email" if missing == "email" else "sms"
    assert f"{gap}:contact_gap" in d.reasons


@pytest.mark.parametrize("kind, until", [("deceased", None), ("dispute_opened", None),
                                         ("promise_to_pay", D + timedelta(days=5))])
def test_holds_that_stop_every_message(kind, until):
    d = decide_one(bills=FORMAL, events=[event(kind, D - timedelta(days=2), until=until, amount=100)])
    assert not {"email", "sms"} & set(d.actions) and d.message_kinds in ((), ("formal_notice",))
    assert any(r.startswith("no_messages:") for r in d.reasons)


def test_a_payment_plan_still_gets_reminders():
    plan = event("payment_plan", D - timedelta(days=5), until=D + timedelta(days=60))
    d = decide_one(bills=FORMAL, events=[plan])
    assert {"email", "sms"} <= set(d.actions) and d.message_kinds == ("reminder",)


@pytest.mark.parametrize("utc_hour, utc_minute, inside", [
    (23, 59, False),   # 07:59 in Shanghai
    (0, 0, True),      # 08:00
    (12, 59, True),    # 20:59
    (13, 0, False),    # 21:00: the window's end is not inside it
])
def test_the_contact_window_is_read_in_the_utility_time_zone(utc_hour, utc_minute, inside):
    moment = datetime(2026, 11, 16, utc_hour, utc_minute, tzinfo=timezone.utc)
    assert in_window(moment, "Asia/Shanghai", (time(8), time(21))) is inside


def test_a_window_to_midnight_includes_the_last_minute():
    late = datetime(2026, 11, 16, 15, 59, 59, tzinfo=timezone.utc)  # 23:59:59 Shanghai
    assert in_window(late, "Asia/Shanghai", (time(0), time.max))
    assert not in_window(late, "Europe/London", (time(8), time(15)))  # 15:59 in London


def test_invalid_details_from_the_extract_reach_nobody_and_messages_use_only_own_details(engine, tmp_path):
    """Through ingest, decide and the outbox: a bad email/mobile becomes a gap; every queued
    message is addressed to the account's own details of that day."""
    from arrears.cycle import decide as decide_step
    from arrears.cycle.run import CycleRun
    from arrears.delivery.outbox import queue_messages
    from arrears.ingest import ingest_delivery
    from arrears.policy.business_days import BusinessCalendar
    from factories import landing

    accounts = [
        ["A1", "王伟", "residential", "", "not-an-email", "12345", "zh-CN", "", ""],
        ["A2", "李娜", "residential", "", "li.na@example.com", "13900000002", "zh-CN", "", ""],
        ["A3", "Jo Bloggs", "residential", "", "jo@example.com", "+447700900123", "en", "", "email"],
    ]
    bills = [[f"B{i}", f"A{i}", "2026-10", "200.00", "2026-11-13"] for i in (1, 2, 3)]
    ingest_delivery(engine, landing(tmp_path / D.isoformat(), accounts, bills, [], []), D)
    decide_step.stage_bills(engine, D)
    run = CycleRun(cycle_date=D, run_id="scheduled__x", run_type="scheduled")
    decide_step.decide_cycle(engine, run, POLICY, BusinessCalendar())
    with engine.connect() as conn:
        reasons = conn.execute(text("SELECT reasons FROM decisions WHERE account_id = 'A1'")).scalar_one()
    assert "email:contact_gap" in reasons and "sms:contact_gap" in reasons
    queue_messages(engine, run, POLICY, "utility.example", datetime(2026, 11, 16, 1, tzinfo=timezone.utc))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT account_id, channel, address, body_text FROM outbox"
                                 " ORDER BY idem_key")).all()
    assert [(a, c, addr) for a, c, addr, _ in rows] == [
        ("A2", "email", "li.na@example.com"), ("A2", "sms", "+8613900000002"),
        ("A3", "sms", "+447700900123")]
    holders = {"A1": "王伟", "A2": "李娜", "A3": "Jo Bloggs"}
    for account_id, _, _, body in rows:
        assert holders[account_id] in body
        assert not [h for a, h in holders.items() if a != account_id and h in body]
