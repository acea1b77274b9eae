"""The real cycle DAG (`dag.test`) with `arrears_smtp` and `arrears_sms` pointing at a real SMTP
server and a real SMS gateway: each message arrives once; running the same date again sends
nothing new; cycle_summary.json counts what happened."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from delivery_servers import SmsGateway, start_smtp
from factories import landing
from test_delivery_outbox import ACCOUNTS, BILLS, D, EVENTS, EXPECTED_EMAIL, EXPECTED_SMS


def test_the_cycle_sends_each_message_once_and_a_rerun_sends_nothing(tmp_path, monkeypatch, dagbag):
    from airflow.utils.state import DagRunState
    land, outbox = tmp_path / "landing", tmp_path / "outbox"
    landing(land / D.isoformat(), ACCOUNTS, BILLS, [], EVENTS)
    controller, smtp = start_smtp()
    gateway = SmsGateway()
    try:
        for name, value in {
            "AIRFLOW_VAR_ARREARS_LANDING": str(land), "AIRFLOW_VAR_ARREARS_OUTBOX": str(outbox),
            # The test runs whenever it runs: the whole day is the window here.
            "AIRFLOW_VAR_ARREARS_CONTACT_WINDOW": "00:00-24:00",
            "AIRFLOW_CONN_ARREARS_DB": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "c.db")}),
            "AIRFLOW_CONN_ARREARS_SMTP": json.dumps({
                "conn_type": "smtp", "host": "127.0.0.1", "port": controller.port,
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "billing@power.example"}}),
            "AIRFLOW_CONN_ARREARS_SMS": f"http://127.0.0.1:{gateway.port}/v1/sms",
        }.items():
            monkeypatch.setenv(name, value)
        dag = dagbag.get_dag("arrears_collection_cycle")
        logical = datetime(D.year, D.month, D.day, 0, 30, tzinfo=timezone.utc)
        for attempt in (1, 2):
            run = dag.test(logical_date=logical)
            assert run.state == DagRunState.SUCCESS, f"run {attempt} ended {run.state}"
            assert sorted(m["To"] for m in smtp.messages) == sorted(EXPECTED_EMAIL)
            assert sorted(s["to"] for s in gateway.sent) == sorted(EXPECTED_SMS)
            assert len(gateway.requests) == 5            # the 5th is A7's refused number
        assert all(m["Message-ID"].endswith("@power.example>") for m in smtp.messages)
        summary = json.loads((outbox / D.isoformat() / "cycle_summary.json").read_text())
        assert {k: v for k, v in summary["messages"].items() if v} == {"sent": 9, "permanent_failure": 2}
        assert not (outbox / D.isoformat() / "mail").exists()   # a connection: no .eml files
    finally:
        controller.stop()
        gateway.stop()
