"""Served means delivered, through the real DAG (`dag.test`) on SQLite and PostgreSQL.

Cycle dates (Asia/Shanghai), mail through a real SMTP server, SMS to the embedded file transport:
  A Mon 16 Nov   R1 (only contact: a mailbox that answers 550) and R2 (good contacts) enter
                 escalation: both get a pre-notice and a disconnection notice by message. R2's
                 are delivered (served 16 Nov); R1's bounce: nothing is served, R1's mailbox
                 becomes a contact gap. R4 (escalation) and R5 (formal notice) are on a
                 payment plan: on neither agents' list.
  B Mon 23 Nov   R2: credit report (7 days after service) and an order proposed (earliest 23
                 Nov). R1: neither; its field visit says to serve both notices in person.
  C Tue 24 Nov   staff record both notices served to R1 in person (case events in the
                 extract): served 24 Nov, earliest disconnection Tue 1 Dec. R3 (low income)
                 enters escalation: its earliest date would fall in winter, so no notice.
  E Tue 1 Dec    R1: credit report and an order proposed, 7 days after the in-person service.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timezone

from arrears.db.values import as_date
from cycle_steps import rows
from delivery_servers import start_smtp
from factories import landing

A, B, C, E = date(2026, 11, 16), date(2026, 11, 23), date(2026, 11, 24), date(2026, 12, 1)

ACCOUNTS = {
    "R1": ["R1", "王伟", "residential", "北京市朝阳区人民路1号", "bounce@r1.example", "", "zh-CN", "", ""],
    "R2": ["R2", "李娜", "residential", "上海市浦东新区建设路2号", "r2@example.com", "13900000002", "zh-CN", "", ""],
    "R3": ["R3", "张强", "residential", "天津市和平区3号", "r3@example.com", "13900000003", "zh-CN", "low_income", ""],
    "R4": ["R4", "刘洋", "residential", "南京市鼓楼区4号", "r4@example.com", "13900000004", "zh-CN", "", ""],
    "R5": ["R5", "陈静", "residential", "杭州市西湖区5号", "r5@example.com", "13900000005", "zh-CN", "", ""],
}
BILLS = {
    "R1": ["B1", "R1", "2026-09", "500.00", "2026-10-01"],
    "R2": ["B2", "R2", "2026-09", "500.00", "2026-10-01"],
    "R3": ["B3", "R3", "2026-09", "500.00", "2026-10-20"],
    "R4": ["B4", "R4", "2026-09", "500.00", "2026-10-01"],
    "R5": ["B5", "R5", "2026-10", "500.00", "2026-11-01"],
}
PLANS = [["P4", "R4", "payment_plan", "2026-11-10", "", "2027-01-31", ""],
         ["P5", "R5", "payment_plan", "2026-11-10", "", "2027-01-31", ""]]
IN_PERSON = [["S1", "R1", "notice_served", "2026-11-24", "", "", "credit_prenotice"],
             ["S2", "R1", "notice_served", "2026-11-24", "", "", "disconnection_notice"]]


def _land(root, day, ids, events=()):
    landing(root / day.isoformat(), [ACCOUNTS[i] for i in ids], [BILLS[i] for i in ids], [],
            [*PLANS, *events])


def _run(dagbag, day):
    from airflow.utils.state import DagRunState
    run = dagbag.get_dag("arrears_collection_cycle").test(
        logical_date=datetime(day.year, day.month, day.day, 0, 30, tzinfo=timezone.utc))
    assert run.state == DagRunState.SUCCESS, f"cycle {day} ended {run.state}"


def _csv(path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def _decision(engine, account, day):
    [(actions, reasons)] = rows(engine, "SELECT actions, reasons FROM decisions"
                                        " WHERE account_id = :a AND cycle_date = :d", a=account, d=day)
    return set(actions.split(";")) - {""}, reasons.split(";")


def test_a_notice_counts_when_delivered_or_served_in_person(tmp_path, monkeypatch, dagbag, engine,
                                                            collection_conn, dispatch_on_cycle_date):
    land, outbox = tmp_path / "landing", tmp_path / "outbox"
    _land(land, A, ["R1", "R2", "R4", "R5"])
    _land(land, B, ["R1", "R2", "R4", "R5"])
    _land(land, C, ["R1", "R2", "R3", "R4", "R5"], IN_PERSON)
    _land(land, E, ["R1", "R2", "R3", "R4", "R5"], IN_PERSON)
    controller, smtp = start_smtp()
    try:
        for name, value in {
                "AIRFLOW_VAR_ARREARS_LANDING": str(land), "AIRFLOW_VAR_ARREARS_OUTBOX": str(outbox),
                "AIRFLOW_VAR_ARREARS_CONTACT_WINDOW": "08:00-21:00",
                "AIRFLOW_CONN_ARREARS_DB": collection_conn,
                "AIRFLOW_CONN_ARREARS_SMTP": json.dumps({
                    "conn_type": "smtp", "host": "127.0.0.1", "port": controller.port,
                    "extra": {"disable_ssl": True, "disable_tls": True,
                              "from_email": "billing@power.example"}})}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AIRFLOW_CONN_ARREARS_SMS", raising=False)

        # --- A: R2 served by message; R1's only mailbox bounces ---------------------------
        _run(dagbag, A)
        notices = _csv(outbox / A.isoformat() / "disconnection" / "notices.csv")
        assert notices == [{"account_id": "R2", "notice_id": "DN-20261116-R2",
                            "served_on": "2026-11-16", "earliest_disconnection": "2026-11-23"}]
        assert {(a, n, as_date(s)) for a, n, s in rows(
            engine, "SELECT account_id, notice, served_on FROM notice_service")} == {
            ("R2", "credit_prenotice", A), ("R2", "disconnection_notice", A)}
        assert rows(engine, "SELECT account_id, channel, address FROM contact_gaps") == [
            ("R1", "email", "bounce@r1.example")]
        assert rows(engine, "SELECT reason FROM contact_gaps")[0][0].startswith("permanent_failure:550")
        visits = {r["account_id"] for r in _csv(outbox / A.isoformat() / "field_visits.csv")}
        calls = {r["account_id"] for r in _csv(outbox / A.isoformat() / "call_list.csv")}
        assert visits == {"R1", "R2"} and "R4" not in visits   # the plan stops the field visit
        assert "R5" not in calls                                  # ... and the call list

        # --- B: 7 days on, only the delivered notice counts -------------------------------
        _run(dagbag, B)
        r2, _ = _decision(engine, "R2", B)
        assert {"credit_report", "disconnection_order"} <= r2
        r1, why = _decision(engine, "R1", B)
        assert not r1 & {"credit_report", "disconnection_order", "email"}
        assert "credit_report:no_prenotice_served" in why
        assert "email:contact_gap:permanent_failure" in why
        assert {"field_visit:serve_credit_prenotice_in_person",
                "field_visit:serve_disconnection_notice_in_person"} <= set(why)
        [visit] = [r for r in _csv(outbox / B.isoformat() / "field_visits.csv") if r["account_id"] == "R1"]
        assert "Serve credit_prenotice in person" in visit["visit_hints"]
        assert "Serve disconnection_notice in person" in visit["visit_hints"]
        proposed = _csv(outbox / B.isoformat() / "disconnection" / "proposed_orders.csv")
        assert [p["account_id"] for p in proposed] == ["R2"]

        # --- C: served in person; a winter notice is never issued -------------------------
        _run(dagbag, C)
        notices = _csv(outbox / C.isoformat() / "disconnection" / "notices.csv")
        assert notices == [{"account_id": "R1", "notice_id": "DN-20261124-R1",
                            "served_on": "2026-11-24", "earliest_disconnection": "2026-12-01"}]
        r3, why = _decision(engine, "R3", C)
        assert "disconnection_notice" not in r3
        assert "disconnection_notice_withheld:earliest_2026-12-01_protected:protected_winter" in why

        # --- E: 7 days after the in-person service --------------------------------------
        _run(dagbag, E)
        r1, why = _decision(engine, "R1", E)
        assert {"credit_report", "disconnection_order"} <= r1
        assert "credit_report:prenotice_served_2026-11-24" in why
        proposed = _csv(outbox / E.isoformat() / "disconnection" / "proposed_orders.csv")
        assert {"account_id": "R1", "notice_id": "DN-20261124-R1"} in proposed
        assert "R1" in (outbox / E.isoformat() / "credit_report" / "manifest.csv").read_text()
    finally:
        controller.stop()


def test_a_deferred_message_serves_its_notice_on_the_day_it_is_sent(tmp_path, monkeypatch, dagbag,
                                                                     engine, db_url, collection_conn,
                                                                     dispatch_on_cycle_date):
    """Outside the contact window the cycle defers R2's message; the hourly arrears_outbox_dispatch
    DAG sends it the next morning, and that day is the service date."""
    from airflow.utils.state import DagRunState

    from cycle_steps import run_cycle, use_database
    land, outbox = tmp_path / "landing", tmp_path / "outbox"
    _land(land, A, ["R2"])
    use_database(monkeypatch, db_url, land, outbox)
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", collection_conn)
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_CONTACT_WINDOW", "10:00-21:00")  # the cycle runs at 09:00
    out = run_cycle(A)
    assert out["dispatch"]["deferred"] == 2 and out["dispatch"]["sent"] == 0
    assert rows(engine, "SELECT COUNT(*) FROM notice_service") == [(0,)]
    assert rows(engine, "SELECT COUNT(*) FROM disconnection_notices") == [(0,)]

    # Tue 17 Nov 10:05 local: the hourly sweep.
    run = dagbag.get_dag("arrears_outbox_dispatch").test(
        logical_date=datetime(2026, 11, 17, 2, 5, tzinfo=timezone.utc))
    assert run.state == DagRunState.SUCCESS
    served = date(2026, 11, 17)
    assert {(a, n, as_date(s), as_date(k)) for a, n, s, k in rows(
        engine, "SELECT account_id, notice, served_on, decided_on FROM notice_service")} == {
        ("R2", "credit_prenotice", served, A), ("R2", "disconnection_notice", served, A)}
    assert _csv(outbox / served.isoformat() / "disconnection" / "notices.csv") == [
        {"account_id": "R2", "notice_id": "DN-20261117-R2", "served_on": "2026-11-17",
         "earliest_disconnection": "2026-11-24"}]
    assert _csv(outbox / A.isoformat() / "disconnection" / "notices.csv") == []


def _full_cycle(day, land, ids, bills=None, events=()):
    """Every step of a cycle in the DAG's order, through the task functions the DAG calls."""
    from arrears.cycle import tasks as cycle_steps
    from arrears.ingest import tasks as ingest_steps
    from arrears.audit import tasks as audit_steps
    from arrears.delivery import tasks as delivery
    from arrears.disconnection import tasks as disconnection
    from cycle_steps import context
    landing(land / day.isoformat(), [ACCOUNTS.get(i) or LAPSING[i] for i in ids],
            bills if bills is not None else [LAPSE_BILL(i) for i in ids], [], list(events))
    for name, step in (("ingest", ingest_steps.ingest), ("stage", cycle_steps.stage), ("decide", cycle_steps.decide),
                       ("disconnection", disconnection.cycle_disconnection),
                       ("publish", cycle_steps.publish), ("queue_messages", delivery.queue),
                       ("dispatch_messages", delivery.dispatch_cycle), ("audit", audit_steps.audit)):
        step(context(day, task_id=name))


LAPSING = {a: [a, f"户主{a}", "residential", "", f"{a.lower()}@example.com", f"1390000{a[1:]:0>4}",
               "zh-CN", "", ""] for a in ("L1", "L2", "L3", "L4")}


def LAPSE_BILL(account, amount="500.00", due="2026-10-01"):  # noqa: N802 - a row builder
    return [f"B-{account}-{due}", account, due[:7], amount, due]


def test_each_lapse_reason_in_the_record_the_audit_and_the_timeline(tmp_path, monkeypatch, engine,
                                                                    db_url, collection_conn,
                                                                    dispatch_on_cycle_date):
    from arrears.audit.timeline import account_timeline
    from cycle_steps import use_database
    land, outbox = tmp_path / "landing", tmp_path / "outbox"
    use_database(monkeypatch, db_url, land, outbox)
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", collection_conn)
    ids = ["L1", "L2", "L3", "L4"]
    _full_cycle(A, land, ids)   # four notices served (delivered) on A, earliest Mon 23 Nov
    assert len(_csv(outbox / A.isoformat() / "disconnection" / "notices.csv")) == 4
    # Wed 18 Nov: L1 paid its old bill (a newer one is 8 days overdue: formal notice), L2 paid
    # down to 50.00, L3 paid in full (gone); L4 still owes everything.
    day2 = date(2026, 11, 18)
    _full_cycle(day2, land, ["L1", "L2", "L4"],
                [LAPSE_BILL("L1", "300.00", "2026-11-10"), LAPSE_BILL("L2", "50.00"), LAPSE_BILL("L4")])
    # L4's order is proposed on 23 Nov but never approved: 30 days after its earliest date the
    # notice lapses and no order may rest on it.
    day3 = date(2026, 12, 23)
    _full_cycle(day3, land, ["L4"])
    closed = {a: (as_date(c), r) for a, c, r in rows(
        engine, "SELECT account_id, closed_on, closed_reason FROM disconnection_notices")}
    assert closed == {"L1": (day2, "notice_lapsed:left_escalation"),
                      "L2": (day2, "notice_lapsed:below_minimum"),
                      "L3": (day2, "notice_lapsed:paid_in_full"),
                      "L4": (day3, "notice_lapsed:expired")}
    l4, why = _decision(engine, "L4", day3)
    assert "disconnection_order" not in l4
    assert "disconnection:notice_DN-20261116-L4_lapsed:expired" in why
    lapsed = _csv(outbox / day2.isoformat() / "disconnection" / "cancelled_notices.csv")
    assert [(r["account_id"], r["closed_reason"]) for r in lapsed] == [
        ("L1", "notice_lapsed:left_escalation"), ("L2", "notice_lapsed:below_minimum"),
        ("L3", "notice_lapsed:paid_in_full")]
    assert {r[0] for r in rows(engine, "SELECT detail FROM disconnection_log"
                                       " WHERE event = 'notice_cancelled'")} == {
        "notice_lapsed:left_escalation", "notice_lapsed:below_minimum",
        "notice_lapsed:paid_in_full", "notice_lapsed:expired"}
    with engine.connect() as conn:
        for account, why in (("L1", "left_escalation"), ("L2", "below_minimum"),
                             ("L3", "paid_in_full"), ("L4", "expired")):
            steps = account_timeline(conn, account)
            assert any(s.kind == "notice" and s.rule == f"notice_lapsed:{why}" for s in steps), \
                [(s.kind, s.what, s.rule) for s in steps]
