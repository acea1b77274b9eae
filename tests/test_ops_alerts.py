"""Operations alerts: a failed task mails the ops address through arrears_smtp (task-level
SmtpNotifier), the cycle's deadline alert (DAGRUN_QUEUED_AT + the configured finish-by time) and
its async callback, and the pools the tasks run in."""
from __future__ import annotations

import asyncio
import importlib.util
import json
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import pytest

from delivery_servers import start_smtp

REPO = Path(__file__).resolve().parents[1]


def smtp_env(monkeypatch, port: int) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@utility.example",
                  "retry_limit": 0}}))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OPS_EMAIL", "oncall@utility.example")


def test_deadline_interval_is_the_finish_by_time_after_the_schedule():
    from arrears.ops.alerts import deadline_interval
    from arrears.settings import SettingsError
    assert deadline_interval(time(8, 30), "12:00") == timedelta(hours=3, minutes=30)
    assert deadline_interval(time(8, 30), "02:00") == timedelta(hours=17, minutes=30)  # next day
    with pytest.raises(SettingsError, match="HH:MM"):
        deadline_interval(time(8, 30), "noon")


def load_cycle_dag(monkeypatch, finish_by: str | None):
    if finish_by:
        monkeypatch.setenv("AIRFLOW_VAR_ARREARS_CYCLE_FINISH_BY", finish_by)
    else:
        monkeypatch.delenv("AIRFLOW_VAR_ARREARS_CYCLE_FINISH_BY", raising=False)
    path = REPO / "dags" / "arrears_collection_cycle.py"
    spec = importlib.util.spec_from_file_location(f"cycle_dag_{finish_by}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cycle


def test_the_cycle_has_a_queued_at_deadline_when_configured(monkeypatch, airflow_home):
    from airflow.sdk import DeadlineReference
    dag = load_cycle_dag(monkeypatch, "11:00")
    (alert,) = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert alert.interval == timedelta(hours=2, minutes=30)
    assert alert.callback.path == "arrears.ops.alerts.cycle_deadline_missed"
    assert alert.callback.kwargs == {"finish_by": "11:00"}
    # Unconfigured (dags test, the test suite): no deadline.
    assert not load_cycle_dag(monkeypatch, None).deadline


def test_every_cycle_task_notifies_ops_on_failure_and_runs_in_a_pool(monkeypatch, airflow_home):
    from arrears.ops.alerts import OpsFailureNotifier
    dag = load_cycle_dag(monkeypatch, None)
    for t in dag.tasks:
        callbacks = t.on_failure_callback if isinstance(t.on_failure_callback, list) else [t.on_failure_callback]
        assert any(isinstance(c, OpsFailureNotifier) for c in callbacks), t.task_id
        assert t.pool in ("arrears_db", "arrears_smtp"), (t.task_id, t.pool)


def test_a_failed_task_mails_the_ops_address(tmp_path, monkeypatch, dagbag):
    """The real cycle (dag.test) on a corrupted delivery: ingest fails, ops gets one mail naming
    the task and the error; no customer is contacted."""
    from airflow.utils.state import DagRunState
    from factories import landing
    day = datetime(2026, 11, 16, 0, 30, tzinfo=timezone.utc)
    folder = landing(tmp_path / "landing" / "2026-11-16",
                     [["A1", "王伟", "residential", "", "a1@example.com", "", "zh-CN", "", ""]],
                     [["B1", "A1", "2026-10", "100.00", "2026-11-01"]])
    (folder / "accounts.csv").write_bytes(b"account_id,holder_name\n\"A1,unterminated")
    controller, recorder = start_smtp()
    try:
        smtp_env(monkeypatch, controller.port)
        monkeypatch.setenv("AIRFLOW_VAR_ARREARS_LANDING", str(tmp_path / "landing"))
        monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(tmp_path / "outbox"))
        monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB",
                           json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "c.db")}))
        run = dagbag.get_dag("arrears_collection_cycle").test(logical_date=day)
        assert run.state == DagRunState.FAILED
        (mail,) = recorder.messages
        assert mail["To"] == "oncall@utility.example"
        assert mail["Subject"].startswith("[arrears] arrears_collection_cycle.ingest failed")
        assert "accounts.csv" in mail.get_body().get_content()
    finally:
        controller.stop()


def test_the_deadline_callback_mails_ops_and_skips_backfills(monkeypatch):
    from arrears.ops.alerts import cycle_deadline_missed
    controller, recorder = start_smtp()
    try:
        smtp_env(monkeypatch, controller.port)
        run = {"dag_run_id": "scheduled__2026-11-16T00:30:00+00:00", "run_type": "scheduled",
               "logical_date": "2026-11-16T00:30:00Z", "state": "running"}
        result = asyncio.run(cycle_deadline_missed("12:00", context={"dag_run": run}))
        assert result == "mailed oncall@utility.example"
        (mail,) = recorder.messages
        assert mail["To"] == "oncall@utility.example"
        assert "not finished by 12:00" in mail["Subject"]
        backfill = {**run, "run_type": "backfill", "dag_run_id": "backfill__2026-11-10"}
        assert asyncio.run(cycle_deadline_missed("12:00", context={"dag_run": backfill})) == \
            "skipped: backfill"
        assert len(recorder.messages) == 1
    finally:
        controller.stop()


def test_without_an_smtp_connection_alerts_are_logged_not_crashed(monkeypatch, caplog):
    from arrears.ops import alerts
    monkeypatch.delenv("AIRFLOW_CONN_ARREARS_SMTP", raising=False)
    monkeypatch.setattr(alerts, "get_connection", lambda conn_id: None)
    run = {"dag_run_id": "manual__x", "run_type": "manual", "state": "running"}
    assert asyncio.run(alerts.cycle_deadline_missed("12:00", context={"dag_run": run})) == "logged"
    notifier = alerts.failure_notifier()
    notifier.subject = "[arrears] probe failed"
    notifier.notify({})
    assert "ops alert not mailed" in caplog.text
