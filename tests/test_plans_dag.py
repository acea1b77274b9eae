"""CONTRACT §8 through the real cycle DAG (`dag.test`): two instalment plans posted by an agent;
one kept by an on-time payment, one broken by a missed instalment once its grace ran out."""
from __future__ import annotations

import csv
import json
from datetime import date, datetime, timezone

from sqlalchemy import text

from arrears.db import connect
from arrears.ingest.posted import post_event
from factories import landing

D1, D2 = date(2026, 11, 25), date(2026, 11, 26)
ACCOUNTS = [["K1", "王伟", "residential", "", "", "13900000001", "", "", ""],
            ["X1", "李娜", "residential", "", "", "13900000002", "", "", ""]]
# Both owe 200.00 due 11-10: DPD 15/16, formal notice (call list) unless a plan holds them.
BILLS = [["BK", "K1", "2026-10", "200.00", "2026-11-10"],
         ["BX", "X1", "2026-10", "200.00", "2026-11-10"]]
PAYMENTS = [["PK", "K1", "", "100.00", "2026-11-19T10:00:00+08:00"]]


def plan(event_id: str, account_id: str) -> dict:
    return {"event_id": event_id, "account_id": account_id, "event_type": "payment_plan",
            "effective_date": "2026-11-12",
            "instalments": [{"due_date": "2026-11-20", "amount": "100.00"},
                            {"due_date": "2026-12-20", "amount": "100.00"}]}


def test_a_plan_kept_and_a_plan_broken_through_the_dag(tmp_path, monkeypatch, dagbag):
    from airflow.utils.state import DagRunState
    land, outbox, db = tmp_path / "landing", tmp_path / "outbox", tmp_path / "arrears.db"
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_LANDING", str(land))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(outbox))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_CONTACT_WINDOW", "00:00-24:00")
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    engine = connect(f"sqlite:///{db}")
    for day in (D1, D2):
        landing(land / day.isoformat(), ACCOUNTS, BILLS, PAYMENTS, [])
    # The plans were agreed on the phone on 11-12, before these cycles: the extract of 11-12 had
    # the accounts, so the API knows them.
    from arrears.ingest import ingest_delivery
    ingest_delivery(engine, landing(tmp_path / "early", ACCOUNTS, BILLS), date(2026, 11, 12))
    posted = datetime(2026, 11, 12, 3, 0, tzinfo=timezone.utc)
    assert post_event(engine, plan("PL-K1", "K1"), "agent.li", posted).status == "recorded"
    assert post_event(engine, plan("PL-X1", "X1"), "agent.li", posted).status == "recorded"

    dag = dagbag.get_dag("arrears_collection_cycle")
    for day in (D1, D2):
        run = dag.test(logical_date=datetime(day.year, day.month, day.day, 0, 30, tzinfo=timezone.utc))
        assert run.state == DagRunState.SUCCESS, f"cycle {day} ended {run.state}"

    with engine.connect() as conn:
        got = {(str(d)[:10], a): (actions, holds, reasons) for d, a, actions, holds, reasons in
               conn.execute(text("SELECT cycle_date, account_id, actions, holds, reasons"
                                 " FROM decisions ORDER BY cycle_date, account_id"))}
    # 11-25: X1's instalment of 11-20 is unpaid but still inside its 5 days of grace.
    for a in ("K1", "X1"):
        actions, holds, _ = got[("2026-11-25", a)]
        assert "payment_plan" in holds and "call_list" not in actions
    # 11-26: K1 paid on time and keeps its plan; X1's plan is broken and it is called again.
    actions, holds, reasons = got[("2026-11-26", "K1")]
    assert "payment_plan" in holds and "call_list" not in actions and "plan_broken" not in reasons
    actions, holds, reasons = got[("2026-11-26", "X1")]
    assert "payment_plan" not in holds and "call_list" in actions.split(";")
    assert "plan_broken:instalment_2026-11-20" in reasons.split(";")

    calls = list(csv.DictReader((outbox / D2.isoformat() / "call_list.csv").open(encoding="utf-8")))
    assert [(r["account_id"], r["plan_status"]) for r in calls] == \
        [("X1", "broken (instalment 2026-11-20)")]
    assert list(csv.DictReader((outbox / D1.isoformat() / "call_list.csv").open())) == []
