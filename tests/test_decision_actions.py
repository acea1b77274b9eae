"""Decisions as data (issue 19): each action a row of ``decision_actions``, the notice's earliest
date, the open notice and the notices to serve in person as columns, on both databases. The
migration fills them for decisions recorded before it, from the ';'-lists and reason codes."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from arrears.db import make_engine
from arrears.db.migrate import MIGRATIONS, pending
from arrears.db.sqlfiles import run_script
from arrears.db.values import as_date

D = date(2026, 11, 16)
_OLD = ("INSERT INTO decisions (cycle_date, account_id, stage, stage_entered_on, dpd,"
        " outstanding_fen, late_fee_fen, actions, holds, message_kinds, reasons, policy_version)"
        " VALUES (:d, :a, 'escalation', :d, 70, 50000, 0, :acts, '', '', :why, 'v1')")


def _migrate_to(engine, last: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS schema_migrations ("
                          " version INTEGER PRIMARY KEY, name TEXT NOT NULL)"))
        applied = {v for (v,) in conn.execute(text("SELECT version FROM schema_migrations"))}
        for version, path in pending(applied, engine.dialect.name):
            if version <= last:
                run_script(conn, path)
                conn.execute(text("INSERT INTO schema_migrations (version, name) VALUES (:v, :n)"),
                             {"v": version, "n": path.name})


def test_the_migration_turns_recorded_lists_and_reason_codes_into_data(db_url):
    engine = make_engine(db_url)  # not connect(): that migrates to the latest at once
    _migrate_to(engine, 23)
    with engine.begin() as conn:
        conn.execute(text(_OLD), {"d": D, "a": "A1", "acts": "email;sms;disconnection_notice;field_visit",
                                  "why": "stage:escalation:dpd_70;disconnection_notice:earliest_2026-11-24;"
                                         "field_visit:escalation"})
        conn.execute(text(_OLD), {"d": D, "a": "A2", "acts": "field_visit",
                                  "why": "field_visit:escalation;"
                                         "field_visit:serve_credit_prenotice_in_person;"
                                         "field_visit:serve_disconnection_notice_in_person"})
        conn.execute(text(_OLD), {"d": D, "a": "A3", "acts": "",
                                  "why": "disconnection:notice_DN-20261101-A3_until_2026-11-20"})
    _migrate_to(engine, 24)
    with engine.connect() as conn:
        actions = sorted(tuple(r) for r in conn.execute(text(
            "SELECT account_id, action FROM decision_actions WHERE cycle_date = :d"), {"d": D}))
        rows = {r[0]: (as_date(r[1]), r[2], r[3]) for r in conn.execute(text(
            "SELECT account_id, disconnection_earliest, notice_pending, serve_in_person"
            " FROM decisions"))}
    assert actions == [("A1", "disconnection_notice"), ("A1", "email"), ("A1", "field_visit"),
                       ("A1", "sms"), ("A2", "field_visit")]
    assert rows == {"A1": (date(2026, 11, 24), 0, ""),
                    "A2": (None, 0, "credit_prenotice;disconnection_notice"),
                    "A3": (None, 1, "")}


def test_every_migration_file_is_numbered_once():
    numbers = [p.name[:4] for p in MIGRATIONS.glob("*.sql") if ".postgresql." not in p.name]
    assert len(numbers) == len(set(numbers))


def test_a_cycle_writes_each_action_of_each_decision_as_a_row(engine, tmp_path):
    import batches_scenario as scenario
    scenario.build(engine, tmp_path)
    with engine.connect() as conn:
        lists = {(as_date(d), a): set(filter(None, acts.split(";"))) for d, a, acts in conn.execute(
            text("SELECT cycle_date, account_id, actions FROM decisions"))}
        rows: dict = {}
        for d, a, action in conn.execute(text(
                "SELECT cycle_date, account_id, action FROM decision_actions")):
            rows.setdefault((as_date(d), a), set()).add(action)
    assert any("lawyer_letter" in acts for acts in lists.values())
    assert {k: v for k, v in lists.items() if v} == rows


def test_the_notice_decided_today_carries_its_earliest_date_as_data():
    from arrears.model import Account, History, OpenBill
    from arrears.policy import decide_account, load_policy
    policy = load_policy()
    bills = [OpenBill("B1", "2026-08", date(2026, 8, 20), 80_000)]
    account = Account("A1", "王伟", "residential", email="a1@example.com", mobile="+8613900000001")
    history = History(previous_stage="escalation", stage_entered_on=date(2026, 10, 1),
                      prenotices=(date(2026, 10, 1),))
    decision = decide_account(account, bills, [], history, D, policy, lambda d: date(2026, 11, 24))
    assert "disconnection_notice" in decision.actions
    assert decision.disconnection_earliest == date(2026, 11, 24)
    assert not decision.notice_pending and decision.serve_in_person == ()


STEPS = ("credit_prenotice", "disconnection_notice", "lawyer_letter", "credit_report")


def test_the_index_by_action_holds_the_escalation_steps_only(engine):
    # Migration 0033: the channels' and call-list rows (most of them) are only read by key.
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            definition = conn.execute(text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'decision_actions_by_action'"
                " AND schemaname = current_schema()")).scalar_one()
            assert " WHERE " in definition
            assert sorted(s for s in STEPS if f"'{s}'" in definition) == sorted(STEPS)
            assert "'email'" not in definition and "'call_list'" not in definition
            return
        indexed = "SELECT COUNT(*) FROM decision_actions INDEXED BY decision_actions_by_action"
        for step in STEPS:  # a query naming one step may use it ...
            conn.execute(text(f"{indexed} WHERE action = '{step}'")).scalar_one()
        with pytest.raises(OperationalError, match="no query solution"):  # ... one naming a
            # channel may not: its rows are not in it
            conn.execute(text(f"{indexed} WHERE action = 'email'")).scalar_one()


def test_the_readers_by_action_name_use_the_index_on_sqlite(tmp_path):
    # SQLite proves a partial index usable only when a query term is one of its predicate's
    # ORs (action = 'credit_report'): 0033 is spelled so that these readers keep their index.
    from arrears.db import connect, sql
    engine = connect(f"sqlite:///{tmp_path / 'plans.db'}")
    params = {"d": D, "now": D, "keep_days": 1, "cutoff": D}
    with engine.connect() as conn:
        for name in ("batches/paid_after_report.sql", "retention/left_accounts.sql"):
            statement = sql(name, "sqlite").text.replace("{decisions}", "decisions")
            plan = " ".join(r[-1] for r in conn.execute(text("EXPLAIN QUERY PLAN " + statement),
                                                        params))
            assert "decision_actions_by_action" in plan, (name, plan)
