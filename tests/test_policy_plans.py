"""CONTRACT §8: instalment plans matched with payments (pure rule, worked by hand)."""
from __future__ import annotations

from datetime import date

from arrears.model import CaseEvent
from arrears.policy.holds import active_holds
from arrears.policy.plans import current_plan, plan_of, plan_status
from factories import POLICY, account, bill, event

PLAN = CaseEvent("P1", "payment_plan", date(2026, 11, 1), None, date(2026, 12, 20), "",
                 ((date(2026, 11, 20), 10_000), (date(2026, 12, 20), 10_000)))


def test_an_instalment_paid_within_grace_keeps_the_plan():
    paid = [(date(2026, 11, 24), 10_000)]  # 4 days late: inside the 5 days of grace
    s = plan_status(PLAN, paid, date(2026, 11, 26), 5)
    assert (s.state, s.missed, s.next_due, s.next_fen, s.paid_fen) == \
        ("on_schedule", None, date(2026, 12, 20), 10_000, 10_000)
    assert s.describe() == "on_schedule, next 2026-12-20 100.00"


def test_an_instalment_unpaid_after_grace_breaks_the_plan_the_next_day():
    short = [(date(2026, 11, 20), 9_999)]  # one fen short
    assert plan_status(PLAN, short, date(2026, 11, 25), 5).state == "behind"
    s = plan_status(PLAN, short, date(2026, 11, 26), 5)
    assert (s.state, s.missed, s.reason) == ("broken", date(2026, 11, 20),
                                             "plan_broken:instalment_2026-11-20")
    # A payment after the grace ended does not mend it; one before the plan does not count.
    late = [(date(2026, 10, 30), 10_000), (date(2026, 11, 26), 10_000)]
    assert plan_status(PLAN, late, date(2026, 11, 27), 5).missed == date(2026, 11, 20)


def test_paying_ahead_covers_later_instalments():
    s = plan_status(PLAN, [(date(2026, 11, 2), 20_000)], date(2026, 12, 30), 5)
    assert (s.state, s.missed) == ("completed", None)
    # A payment on D itself is not known yet (payments are of D-1 or earlier).
    assert plan_status(PLAN, [(date(2026, 11, 26), 10_000)], date(2026, 11, 26), 5).state == "broken"


def test_the_hold_follows_the_plan():
    acct, d = account(), date(2026, 11, 26)
    assert "payment_plan" in active_holds(acct, [PLAN], 20_000, d, POLICY, [(date(2026, 11, 20), 10_000)])
    assert "payment_plan" not in active_holds(acct, [PLAN], 20_000, d, POLICY, [])
    # A plan without instalments is a plan until its end date, as before.
    plain = event("payment_plan", date(2026, 11, 1), until=date(2026, 12, 20))
    assert "payment_plan" in active_holds(acct, [plain], 20_000, d, POLICY, [])
    assert plan_of([plain], [], d, 5) is None
    assert current_plan([PLAN, event("plan_broken", date(2026, 11, 10))], d) is None


def test_a_broken_plan_resumes_the_stage_with_its_reason():
    from arrears.model import History
    from arrears.policy import decide_account
    from factories import earliest
    bills, d = [bill(date(2026, 11, 10), 20_000)], date(2026, 11, 26)  # DPD 16: formal notice
    kept = decide_account(account(), bills, [PLAN], History(), d, POLICY, earliest,
                  [(date(2026, 11, 20), 10_000)])
    assert "call_list" not in kept.actions and "payment_plan" in kept.holds
    assert "reminders_only:payment_plan" in kept.reasons
    broken = decide_account(account(), bills, [PLAN], History(), d, POLICY, earliest, [])
    assert "call_list" in broken.actions and "payment_plan" not in broken.holds
    assert "plan_broken:instalment_2026-11-20" in broken.reasons
