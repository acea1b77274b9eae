"""The per-account decision state (arrears.cycle.state) decides exactly as the full history read
(include/sql/cycle/history.sql) does, on both databases, through the cycle's task functions:
daily runs (mapped parts and the single decide), a retried date, a catch-up after an outage, a
replay of an earlier date (the state untouched), a real rerun of an earlier date (the state
invalidated, then rebuilt); and the policy reads only the latest of each earlier action, which
is all the state keeps (a Hypothesis property)."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given, settings, strategies as st
from sqlalchemy import text

from arrears import orchestration
from arrears.cycle import decide as ds
from arrears.cycle import state as decision_state
from arrears.cycle import tasks as cycle_steps
from arrears.db.values import as_date
from arrears.model import SERVED_NOTICES, History
from arrears.policy.business_days import BusinessCalendar
from cycle_steps import context, rows, use_database
from devtools.datagen import generate
from factories import POLICY, account, at_local, bill, decide_one

FIRST = date(2026, 11, 20)   # the run crosses 1 December: a second month of credit reports
DAYS = 16
ACCOUNTS = 160
CALENDAR = BusinessCalendar.for_policy(POLICY)


def as_text(value) -> str:
    return "" if value is None else str(as_date(value))


def decided_key(d) -> tuple:
    """What a decision says, from a Decision or a decisions row alike."""
    return (d.account_id, d.stage, as_text(d.stage_entered_on), ";".join(d.actions),
            ";".join(d.holds), ";".join(d.message_kinds), ";".join(d.reasons),
            int(d.notice_pending), ";".join(d.serve_in_person), as_text(d.disconnection_earliest))


def written(engine, day: date, table: str = "decisions") -> list[tuple]:
    with engine.connect() as conn:
        found = conn.execute(text(
            f"SELECT account_id, stage, stage_entered_on, actions, holds, message_kinds, reasons,"
            f" notice_pending, serve_in_person, disconnection_earliest FROM {table}"
            f" WHERE cycle_date = :d"), {"d": day}).all()
    return sorted((r[0], r[1], as_text(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], as_text(r[9]))
                  for r in found)


def from_full_history(engine, day: date) -> list[tuple]:
    """D's decisions as the full history read makes them (nothing is written)."""
    with engine.connect() as conn:
        return sorted(decided_key(d) for d in ds.iter_decisions(conn, day, POLICY, CALENDAR))


def state_rows(engine) -> tuple:
    with engine.connect() as conn:
        return (sorted(tuple(as_text(v) if i > 1 else v for i, v in enumerate(r)) for r in conn.execute(text(
                    "SELECT account_id, stage, stage_entered_on, last_credit_prenotice,"
                    " last_disconnection_notice, last_lawyer_letter, last_credit_report"
                    " FROM decision_state"))),
                decision_state.through(conn))


def decide(day: date, parts: bool, run_type: str = "scheduled", conf: dict | None = None,
           try_number: int = 1) -> dict:
    """The decide of D as the DAG runs it: plan, the mapped parts, the merge; or the single
    decide step."""
    if not parts:
        return cycle_steps.decide(context(day, run_type, conf, task_id="decide",
                                          try_number=try_number))
    planned = cycle_steps.plan(context(day, run_type, conf, task_id="plan_decisions"), size=50)
    assert len(planned) > 1
    done = [cycle_steps.decide_part(context(day, run_type, conf, task_id="decide_part",
                                            try_number=try_number), part) for part in planned]
    return cycle_steps.decide(context(day, run_type, conf, task_id="decide"), done)


def run_day(engine, day: date, parts: bool = False, run_type: str = "scheduled",
            conf: dict | None = None, try_number: int = 1, deliver: bool = True) -> None:
    """One date through the cycle's steps; its decisions are checked against the full history."""
    from arrears.delivery import tasks as delivery
    from arrears.ingest import tasks as ingest_steps
    ingest_steps.ingest(context(day, run_type, conf, task_id="ingest"))
    cycle_steps.stage(context(day, run_type, conf, task_id="stage"))
    decide(day, parts, run_type, conf, try_number)
    replay = orchestration.run_from_context(context(day, run_type, conf)).replay
    assert written(engine, day, "replay_decisions" if replay else "decisions") == \
        from_full_history(engine, day)
    if deliver and not replay:
        cycle_steps.publish(context(day, run_type, conf, task_id="publish"))
        # Sent on D, so served on D (served means delivered).
        delivery.queue(context(day, run_type, conf, task_id="queue_messages"), at_local(day))
        delivery.dispatch_cycle(context(day, run_type, conf, task_id="dispatch_messages"),
                                at_local(day))


@pytest.fixture
def book(tmp_path, monkeypatch, engine, db_url):
    land, outbox = tmp_path / "landing", tmp_path / "outbox"
    generate(land, FIRST, DAYS, ACCOUNTS, seed=11, bad_rows=False)
    use_database(monkeypatch, db_url, land, outbox)
    return engine


def test_the_state_decides_as_the_full_history_through_reruns_catch_up_replay_and_rebuild(
        book, caplog):
    engine = book
    days = [FIRST + timedelta(days=n) for n in range(DAYS)]
    caplog.set_level("INFO", logger="arrears.cycle")

    for n, day in enumerate(days[:11]):                  # daily runs, 20 Nov .. 30 Nov
        caplog.clear()
        run_day(engine, day, parts=n % 2 == 0)
        assert "earlier decisions from the per-account state" in caplog.text
        assert state_rows(engine)[1] == day - timedelta(days=1)

    # A retry of the last date reads the same state (nothing to fold) and decides the same.
    before = state_rows(engine)
    run_day(engine, days[10], parts=True, try_number=2, deliver=False)
    assert state_rows(engine) == before

    # Outage on 1 and 2 December; the catch-up on the 3rd folds in the 30th and reads the state.
    caplog.clear()
    run_day(engine, days[13])
    assert "earlier decisions from the per-account state" in caplog.text
    assert state_rows(engine)[1] == days[12]

    # A replay of an earlier date reads the full history and leaves the state as it was.
    before = state_rows(engine)
    caplog.clear()
    run_day(engine, days[5], run_type="backfill")
    assert "earlier decisions from the full history" in caplog.text
    assert state_rows(engine) == before
    # So does a dry run of the next date, which the state has not reached and may not fold.
    run_day(engine, days[14], conf={"dry_run": True}, deliver=False)
    assert state_rows(engine) == before

    # A real rerun of an earlier date rewrites decisions the state had taken in: invalidated...
    run_day(engine, days[7], run_type="backfill", conf={"allow_contact": True}, deliver=False)
    assert state_rows(engine)[1] is None
    # ... and rebuilt from every decision by the next real decide, which decides as the full
    # history does and leaves the state as a fold date by date would have.
    caplog.clear()
    run_day(engine, days[14], parts=True)
    assert "decision state rebuilt through" in caplog.text
    rebuilt = state_rows(engine)
    assert rebuilt[1] == days[13]
    run_day(engine, days[15])

    # The run took every action the state keeps, and stage spells changed.
    with engine.connect() as conn:
        counts = conn.execute(text(
            "SELECT COUNT(last_credit_prenotice), COUNT(last_disconnection_notice),"
            " COUNT(last_lawyer_letter), COUNT(last_credit_report),"
            " COUNT(DISTINCT stage_entered_on) FROM decision_state")).one()
        reports = conn.execute(text(
            "SELECT COUNT(DISTINCT account_id) FROM decision_actions"
            " WHERE action = 'credit_report'")).scalar_one()
    assert all(c > 0 for c in counts[:4]) and counts[4] > 3, counts
    assert reports > 0


def test_a_rebuild_equals_the_folds_date_by_date(book):
    engine = book
    days = [FIRST + timedelta(days=n) for n in range(6)]
    for day in days:
        run_day(engine, day, deliver=day < days[-1])
    folded = state_rows(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE decision_state_through SET through = NULL"))
    assert decision_state.bring_up_to(engine, days[-1] - timedelta(days=1)) == "rebuilt"
    assert state_rows(engine) == folded
    assert decision_state.bring_up_to(engine, days[-1] - timedelta(days=1)) == "current"
    assert decision_state.bring_up_to(engine, days[-3]) == "ahead"
    assert state_rows(engine) == folded


def test_a_lost_through_row_is_rebuilt_not_trusted(book):
    """Hostile: the one row saying how far the state goes is gone. The next real decide
    rebuilds and writes it again; it never reads a state it cannot date."""
    engine = book
    run_day(engine, FIRST)
    run_day(engine, FIRST + timedelta(days=1))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM decision_state_through"))
        conn.execute(text("UPDATE decision_state SET stage = 'wrong'"))
    assert rows(engine, "SELECT COUNT(*) FROM decision_state WHERE stage = 'wrong'") != [(0,)]
    run_day(engine, FIRST + timedelta(days=2))
    assert rows(engine, "SELECT COUNT(*) FROM decision_state WHERE stage = 'wrong'") == [(0,)]
    assert state_rows(engine)[1] == FIRST + timedelta(days=1)


# --------------------------------------------------------------------------- the policy

D = date(2026, 11, 16)
days_before = st.integers(min_value=1, max_value=420).map(lambda n: D - timedelta(days=n))


def latest_only(history: History) -> History:
    """What the state keeps of the earlier decisions (include/sql/cycle/decision_state.sql):
    the latest date of each action."""
    def last(days):
        return (max(days),) if days else ()
    notices = tuple((max(d for d, n in history.notices_decided if n == notice), notice)
                    for notice in SERVED_NOTICES
                    if any(n == notice for _, n in history.notices_decided))
    return replace(history, lawyer_letters=last(history.lawyer_letters),
                   credit_reports=last(history.credit_reports), notices_decided=notices)


@settings(max_examples=300, deadline=None)
@given(due_days=st.integers(min_value=-5, max_value=400),
       fen=st.integers(min_value=1, max_value=2_000_000),
       previous=st.sampled_from([None, "reminder", "formal_notice", "escalation"]),
       entered=days_before,
       letters=st.lists(days_before, max_size=6),
       reports=st.lists(days_before, max_size=6),
       prenotices=st.lists(st.integers(min_value=0, max_value=420).map(
           lambda n: D - timedelta(days=n)), max_size=3),
       notices=st.lists(st.tuples(days_before, st.sampled_from(SERVED_NOTICES)), max_size=6),
       reachable=st.booleans())
def test_the_policy_reads_only_the_latest_of_each_earlier_action(
        due_days, fen, previous, entered, letters, reports, prenotices, notices, reachable):
    history = History(previous_stage=previous, stage_entered_on=entered if previous else None,
                      prenotices=tuple(prenotices), lawyer_letters=tuple(letters),
                      credit_reports=tuple(reports), notices_decided=tuple(notices))
    who = account() if reachable else account(email="", mobile="")
    bills = [bill(D - timedelta(days=due_days), fen)]
    assert decide_one(who, bills, history=history) == \
        decide_one(who, bills, history=latest_only(history))


# --------------------------------------------------------------------------- concurrency

def test_a_fold_waits_for_a_decide_that_is_reading_the_state(book):
    """A decide holds the state from before it looks at W until its decisions commit (the
    mapped parts run at once): a fold that comes meanwhile waits, then folds what committed."""
    import threading

    engine = book
    run_day(engine, FIRST)
    run_day(engine, FIRST + timedelta(days=1))
    folded = threading.Event()
    with engine.begin() as writer:          # a decide's writer, as decide_cycle opens it
        decision_state.hold(writer)
        writer.execute(text("DELETE FROM decision_bills WHERE cycle_date = :d"), {"d": FIRST})
        fold = threading.Thread(target=lambda: (
            decision_state.bring_up_to(engine, FIRST + timedelta(days=1)), folded.set()))
        fold.start()
        assert not folded.wait(1.0)         # it waits for the decide ...
        assert decision_state.through(writer) == FIRST
    fold.join(30)                           # ... and folds once the decide committed
    assert folded.is_set() and state_rows(engine)[1] == FIRST + timedelta(days=1)


def test_parts_that_find_the_state_behind_fold_it_once_between_them(book):
    """Two mapped parts start at once with nothing folded for D-1 (no plan step ran): one
    folds, the other finds it done; both read the state and decide as the full history."""
    from concurrent.futures import ThreadPoolExecutor

    from arrears.cycle.run import CycleRun
    from arrears.ingest import tasks as ingest_steps
    engine = book
    days = [FIRST + timedelta(days=n) for n in range(3)]
    for day in days[:2]:
        run_day(engine, day)
    D3 = days[2]
    ingest_steps.ingest(context(D3, task_id="ingest"))
    cycle_steps.stage(context(D3, task_id="stage"))
    expected = from_full_history(engine, D3)
    parts = ds.plan_parts(engine, D3, size=60)
    assert state_rows(engine)[1] == days[0]
    with ThreadPoolExecutor(len(parts)) as pool:
        results = list(pool.map(lambda p: ds.decide_cycle(engine, CycleRun(D3), POLICY, CALENDAR, p),
                                parts))
    assert {r.history for r in results} == {"state"}
    assert written(engine, D3) == expected
    assert state_rows(engine)[1] == days[1]
