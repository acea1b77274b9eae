"""The release DAG end to end: `airflow dags test` waits in the approval, a real api-server on the
same metadata database answers it through the REST API as a named supervisor.

Approve -> work orders released with that supervisor's name; Reject -> nothing released.
No answer by the deadline -> a real `airflow scheduler` (on a fresh metadata DB, every DAG paused)
applies the default Reject after an 8-second deadline -> nothing released, recorded as timed_out.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from arrears.cycle.decide import decide_cycle, stage_bills
from arrears.cycle.run import CycleRun
from arrears.db import connect
from arrears.disconnection import disconnection_step
from arrears.ingest import ingest_delivery
from delivery_servers import start_smtp
from factories import CALENDAR, POLICY, deliver, landing

VENV_BIN = Path(sys.executable).parent
DAG_ID = "arrears_disconnection_release"
DAG_FILE = Path(__file__).resolve().parents[1] / "dags" / "arrears_disconnection_release.py"
SUPERVISOR, PASSWORD = "supervisor.zhang", "approve-me-7"
CLERK, CLERK_PASSWORD = "clerk.wang", "not-an-approver-3"  # may see the DAG, not named to approve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


class Api:
    def __init__(self, base: str):
        self.base, self.token = base, None

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(self.base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


@pytest.fixture(scope="module")
def api(airflow_home, tmp_path_factory):
    """An api-server on the test session's metadata DB, with one supervisor user."""
    home = tmp_path_factory.mktemp("api")
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({SUPERVISOR: PASSWORD, CLERK: CLERK_PASSWORD}))
    port = free_port()
    env = {**os.environ, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{SUPERVISOR}:admin,{CLERK}:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
           "AIRFLOW__API__PORT": str(port)}
    log = (home / "api-server.log").open("wb")
    proc = subprocess.Popen([str(VENV_BIN / "airflow"), "api-server", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = Api(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if client.call("GET", "/api/v2/monitor/health")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("api-server did not come up:\n"
                                     + (home / "api-server.log").read_text()[-3000:])
            time.sleep(1)
        status, body = client.call("POST", "/auth/token", {"username": SUPERVISOR, "password": PASSWORD})
        assert status in (200, 201), body
        client.token = body["access_token"]
        yield client
    finally:
        kill(proc)
        log.close()


def _today() -> date:
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    return date(now.year, now.month, now.day)


def _acct(aid: str) -> list:
    return [aid, f"户主{aid}", "residential", "", f"{aid.lower()}@example.com", "13900000001", "zh-CN", "", ""]


@pytest.fixture
def batch(tmp_path):
    """Notices served 20 days ago, two orders proposed today (the release re-checks as of today)."""
    db = tmp_path / "arrears.db"
    engine = connect(f"sqlite:///{db}")
    today = _today()
    served = today - timedelta(days=20)
    accounts = [_acct("R1"), _acct("R2")]
    bills = [["B-R1", "R1", "2026-01", "500.00", (today - timedelta(days=80)).isoformat()],
             ["B-R2", "R2", "2026-01", "800.00", (today - timedelta(days=80)).isoformat()]]
    for day in (served, today):
        ingest_delivery(engine, landing(tmp_path / "landing" / day.isoformat(), accounts, bills), day)
        stage_bills(engine, day)
        run = CycleRun(day, run_id=f"scheduled__{day}", run_type="scheduled", task_id="disconnection")
        decide_cycle(engine, run, POLICY, CALENDAR)
        out = disconnection_step(engine, run, POLICY, CALENDAR, tmp_path / "outbox")
        deliver(engine, tmp_path / "outbox", run, POLICY)  # served means delivered (CONTRACT §2)
    assert out.proposed == 2, "the batch should hold both accounts"
    env = {**os.environ, "AIRFLOW_CONN_ARREARS_DB": json.dumps({"conn_type": "sqlite", "host": str(db)}),
           "AIRFLOW_VAR_ARREARS_OUTBOX": str(tmp_path / "outbox"), "ARREARS_TASK_RETRIES": "0"}
    env.pop("AIRFLOW_VAR_ARREARS_DISCONNECTION_KILL_SWITCH", None)
    return {"engine": engine, "today": today, "env": env, "outbox": tmp_path / "outbox", "tmp": tmp_path}


def _run_release(batch) -> subprocess.Popen:
    log = (batch["tmp"] / "dags-test.log").open("wb")
    return subprocess.Popen(
        [str(VENV_BIN / "airflow"), "dags", "test", DAG_ID, "-f", str(DAG_FILE), "-c",
         json.dumps({"cycle_date": batch["today"].isoformat()})],
        env=batch["env"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _waiting_approval(api: Api, proc: subprocess.Popen, batch) -> dict:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status, body = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/~/hitlDetails")
        assert status == 200, body
        # The newest waiting request is this test's: an earlier test's run may still be waiting.
        # Only once its task has paused (awaiting_input): the request is written a moment before,
        # and an answer in between is recorded but leaves dag.test(), which has no triggerer to
        # notice it, waiting on the task forever.
        waiting = sorted((h for h in body.get("hitl_details", []) if h.get("responded_at") is None
                          and h["task_instance"].get("state") == "awaiting_input"),
                         key=lambda h: h["task_instance"]["dag_run_id"])
        if waiting:
            return waiting[-1]
        if proc.poll() is not None:
            break
        time.sleep(1)
    raise AssertionError("no approval appeared:\n" + (batch["tmp"] / "dags-test.log").read_text()[-4000:])


def _answer(api: Api, proc: subprocess.Popen, batch, option: str) -> dict:
    try:
        detail = _waiting_approval(api, proc, batch)
        # What the supervisor sees: how many, how much, and the list.
        assert "2 disconnection orders" in detail["subject"] and "1300.00" in detail["subject"]
        assert "| R1 |" in detail["body"] and "| R2 |" in detail["body"] and "800.00" in detail["body"]
        assert detail["defaults"] == ["Reject"]
        run_id = detail["task_instance"]["dag_run_id"]
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails"
        status, body = api.call("PATCH", path, {"chosen_options": [option], "params_input": {}})
        assert status == 200, body
        assert body["responded_by"]["name"] == SUPERVISOR
        again = api.call("PATCH", path, {"chosen_options": ["Approve"], "params_input": {}})
        assert again[0] == 409, "a second answer must be refused"
        proc.wait(timeout=180)
        log = (batch["tmp"] / "dags-test.log").read_text()
        assert proc.returncode == 0, log[-4000:]
        return {"run_id": run_id, "log": log}
    finally:
        kill(proc)


def _approvals(engine) -> list:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT outcome, responded_by, proposals, amount_fen, task_id FROM disconnection_approvals"))]


@pytest.mark.timeout(400)
def test_supervisor_approves_through_the_rest_api_and_orders_are_released(api, batch):
    result = _answer(api, _run_release(batch), batch, "Approve")
    orders = batch["outbox"] / batch["today"].isoformat() / "disconnection" / "work_orders.csv"
    lines = orders.read_text().splitlines()
    assert lines[0] == "account_id,notice_id,order_id,released_on,approved_by"
    assert [line.split(",")[0] for line in lines[1:]] == ["R1", "R2"]
    assert all(line.endswith(f",{batch['today']},{SUPERVISOR}") for line in lines[1:]), lines
    assert _approvals(batch["engine"]) == [("approved", SUPERVISOR, 2, 130_000, "release")]
    with batch["engine"].connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM disconnection_orders WHERE run_id = :r"),
                            {"r": result["run_id"]}).scalar_one() == 2


@pytest.mark.timeout(400)
def test_supervisor_rejects_through_the_rest_api_and_nothing_is_released(api, batch):
    _answer(api, _run_release(batch), batch, "Reject")
    assert not (batch["outbox"] / batch["today"].isoformat() / "disconnection" / "work_orders.csv").exists()
    assert _approvals(batch["engine"]) == [("rejected", SUPERVISOR, 2, 130_000, "record_outcome")]
    with batch["engine"].connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM disconnection_orders")).scalar_one() == 0


@pytest.mark.timeout(400)
def test_only_a_named_approver_may_answer_and_the_approvers_are_mailed(api, batch):
    """arrears_approvers names the supervisor: Airflow refuses the clerk's answer (403) and takes
    the supervisor's; the supervisor got a mail through arrears_smtp linking the request."""
    controller, recorder = start_smtp()
    batch["env"].update({
        "AIRFLOW_VAR_ARREARS_APPROVERS": json.dumps({SUPERVISOR: "zhang@utility.example"}),
        "AIRFLOW_CONN_ARREARS_SMTP": json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": controller.port,
            "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0,
                      "from_email": "airflow@utility.example"}})})
    proc = _run_release(batch)
    try:
        detail = _waiting_approval(api, proc, batch)
        assert [u["id"] for u in detail["assigned_users"]] == [SUPERVISOR]
        run_id = detail["task_instance"]["dag_run_id"]
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails"
        clerk = Api(api.base)
        status, body = clerk.call("POST", "/auth/token", {"username": CLERK, "password": CLERK_PASSWORD})
        clerk.token = body["access_token"]
        status, body = clerk.call("PATCH", path, {"chosen_options": ["Approve"], "params_input": {}})
        assert status == 403, body
        status, body = api.call("PATCH", path, {"chosen_options": ["Approve"], "params_input": {}})
        assert status == 200 and body["responded_by"]["name"] == SUPERVISOR, body
        proc.wait(timeout=180)
        assert proc.returncode == 0, (batch["tmp"] / "dags-test.log").read_text()[-4000:]
    finally:
        kill(proc)
        controller.stop()
    assert _approvals(batch["engine"]) == [("approved", SUPERVISOR, 2, 130_000, "release")]
    (mail,) = recorder.messages
    assert mail["To"] == "zhang@utility.example"
    assert mail["Subject"].startswith("[arrears] approval needed: ") and "1300.00" in mail["Subject"]
    content = mail.get_body().get_content()
    expected = f"/dags/{DAG_ID}/runs/{run_id}/tasks/approve/required_actions"
    assert expected in content and SUPERVISOR in content


def test_approvers_variable_forms():
    from arrears.disconnection.approval import approvers
    from arrears.settings import SettingsError
    assert approvers(None) == {} and approvers(" ") == {}
    assert approvers("a.li, b.wang ,") == {"a.li": "", "b.wang": ""}
    assert approvers('{"a.li": "li@x.cn"}') == {"a.li": "li@x.cn"}
    assert approvers('["a.li"]') == {"a.li": ""}
    with pytest.raises(SettingsError, match="arrears_approvers"):
        approvers("{not json")


def test_no_answer_by_the_deadline_means_reject(monkeypatch, airflow_home):
    """The scheduler applies `defaults` when `response_timeout` passes; Reject skips release."""
    from airflow.dag_processing.dagbag import DagBag
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_DISCONNECTION_APPROVAL_HOURS", "8")
    from airflow.providers.standard.operators.hitl import ApprovalOperator
    dag = DagBag(dag_folder=str(Path(__file__).parents[1] / "dags" / "arrears_disconnection_release.py")
                 ).dags[DAG_ID]
    approve = dag.get_task("approve")
    assert isinstance(approve, ApprovalOperator)
    assert approve.defaults == ["Reject"] and approve.response_timeout == timedelta(hours=8)
    assert approve.retries == 0
    assert dag.get_task("release").upstream_task_ids == {"approve"}
    assert dag.get_task("record_outcome").trigger_rule == "all_done"


def test_a_timed_out_answer_is_recorded_as_timed_out(tmp_path, monkeypatch):
    from arrears.disconnection import tasks

    class Ti:
        def xcom_pull(self, task_ids, key):
            assert (task_ids, key) == ("approve", "answer")
            return {"chosen_options": ["Reject"], "responded_by_user": None,
                    "responded_at": "2026-11-24T13:00:00+00:00", "timedout": True}

    class Run:
        run_id, run_type, run_after = "asset_triggered__x", "asset_triggered", datetime(2026, 11, 24, 1)

    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "a.db")}))
    context = {"ti": Ti(), "dag_run": Run(), "params": {"cycle_date": "2026-11-23"}, "logical_date": None}
    assert tasks.record_outcome(context)["outcome"] == "timed_out"
    engine = connect(f"sqlite:///{tmp_path / 'a.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT outcome, responded_by FROM disconnection_approvals")).all() == [
            ("timed_out", "")]


@pytest.mark.timeout(400)
def test_no_answer_by_the_deadline_releases_nothing_with_a_real_scheduler(batch, tmp_path_factory):
    """A scheduler on a fresh metadata DB applies the default Reject once the deadline passes."""
    home = tmp_path_factory.mktemp("timeout-home")
    env = {**batch["env"], "AIRFLOW_HOME": str(home),
           "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # the scheduler starts no run itself
           "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
           "AIRFLOW_VAR_ARREARS_DISCONNECTION_APPROVAL_HOURS": str(8 / 3600)}  # 8 seconds
    subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=env, check=True,
                   capture_output=True, timeout=180)
    batch = {**batch, "env": env}
    scheduler_log = (home / "scheduler.log").open("wb")
    scheduler = subprocess.Popen([str(VENV_BIN / "airflow"), "scheduler"], env=env, stdout=scheduler_log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    proc = _run_release(batch)
    try:
        proc.wait(timeout=240)
        log = (batch["tmp"] / "dags-test.log").read_text()
        assert proc.returncode == 0, log[-4000:]
    finally:
        kill(proc)
        kill(scheduler)
        scheduler_log.close()
    assert not (batch["outbox"] / batch["today"].isoformat() / "disconnection" / "work_orders.csv").exists()
    assert _approvals(batch["engine"]) == [("timed_out", "", 2, 130_000, "record_outcome")]
    with batch["engine"].connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM disconnection_orders")).scalar_one() == 0
