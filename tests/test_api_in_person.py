"""CONTRACT §8 through the real DAG (`dag.test`): a credit pre-notice served in person and
recorded by an agent through the case-events API counts as service; the credit report follows
7 days after its effective date (the service rule itself is arrears.records.service)."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

from arrears.db import connect
from arrears.ingest.posted import post_event
from cycle_steps import rows
from factories import landing

# No e-mail and no mobile: no message can serve the pre-notice; only staff at the door can.
ACCOUNTS = [["V1", "王伟", "residential", "北京市朝阳区人民路1号", "", "", "zh-CN", "", ""]]
BILLS = [["BV", "V1", "2026-09", "500.00", "2026-10-01"]]


def test_an_in_person_prenotice_posted_by_an_agent_leads_to_the_report_7_days_later(
        tmp_path, monkeypatch, dagbag):
    from airflow.utils.state import DagRunState
    land, db = tmp_path / "landing", tmp_path / "arrears.db"
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_LANDING", str(land))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_CONTACT_WINDOW", "00:00-24:00")
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    monkeypatch.delenv("AIRFLOW_CONN_ARREARS_SMTP", raising=False)
    engine = connect(f"sqlite:///{db}")
    days = (date(2026, 11, 16), date(2026, 11, 23), date(2026, 11, 24))
    for day in days:
        landing(land / day.isoformat(), ACCOUNTS, BILLS, [], [])
    dag = dagbag.get_dag("arrears_collection_cycle")

    def run(day):
        result = dag.test(logical_date=datetime(day.year, day.month, day.day, 0, 30, tzinfo=timezone.utc))
        assert result.state == DagRunState.SUCCESS, f"cycle {day} ended {result.state}"
        [(actions, reasons)] = rows(engine, "SELECT actions, reasons FROM decisions WHERE"
                                            " account_id = 'V1' AND cycle_date = :d", d=day)
        return set(actions.split(";")), reasons.split(";")

    run(days[0])
    # 17 Nov, 11:00 in Shanghai: the field agent served the pre-notice at the door.
    posted = post_event(engine, {"event_id": "FV-V1-1", "account_id": "V1",
                                 "event_type": "notice_served", "effective_date": "2026-11-17",
                                 "note": "credit_prenotice"},
                        "field.zhao", datetime(2026, 11, 17, 3, 0, tzinfo=timezone.utc))
    assert posted.status == "recorded"
    actions, why = run(days[1])  # 6 days after the service: not yet
    assert "credit_report" not in actions
    actions, why = run(days[2])  # 7 days after it
    assert "credit_report" in actions, why
    assert "credit_report:prenotice_served_2026-11-17" in why
