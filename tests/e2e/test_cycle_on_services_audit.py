"""The audit trail and the task logs of the runs on real services (after
test_cycle_on_services.py in the same session, whose runs it reads; it makes a run itself when
there is none): the chain verifies, the day's decisions and messages are on it, and no personal
data of the extract is in any task log file the workers wrote."""
from __future__ import annotations

import csv
import json
import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, text

from devtools import datagen
from arrears.audit import trail
from e2e_services import DAG_ID
from test_cycle_on_services import last_schedule_date, logical

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def _personal_data(landing) -> set[str]:
    values = set()
    for path in landing.rglob("accounts.csv"):
        with path.open(encoding="utf-8-sig") as fh:
            for row in csv.DictReader(fh):
                values.update(v.strip() for k, v in row.items()
                              if k in ("holder_name", "service_address", "email", "mobile")
                              and v and len(v.strip()) >= 2)
    return values


def _log_text(path) -> str:
    """A task log file as text, JSON lines decoded (non-ASCII is escaped in them)."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.dumps(json.loads(line), ensure_ascii=False))
        except ValueError:
            out.append(line)
    return "\n".join(out)


def test_audit_trail_and_task_logs_on_services(services):
    svc = services
    svc.wait("the DAG to be parsed and serialized",
             lambda: svc.rest("GET", f"/api/v2/dags/{DAG_ID}", ok=(200, 404))[0] == 200, 180)
    _, runs = svc.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100")
    done = [r for r in runs["dag_runs"] if r["state"] == "success"]
    if not done:  # on its own: the day's scheduled run, as test_cycle_on_services makes it
        day = last_schedule_date(datetime.now(timezone.utc))
        datagen.generate(svc.landing, day, 1, 40, seed=5)
        svc.rest("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})

        def scheduled_run():
            _, listed = svc.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=10")
            return next((r for r in listed["dag_runs"] if r["logical_date"] == logical(day)),
                        None)
        try:
            run = svc.wait("the scheduler to create the scheduled run", scheduled_run, 60)
        except AssertionError:
            _, run = svc.rest("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                              {"dag_run_id": f"audit-e2e__{day}", "logical_date": logical(day),
                               "conf": {}})
        svc.wait_run(run["dag_run_id"], timeout=300)

    engine = create_engine(svc.data_url)
    with engine.connect() as conn:
        check = trail.verify(conn)
        assert check.ok and check.entries > 0, check.describe()
        decided = conn.execute(text("SELECT COUNT(*) FROM decisions WHERE replay = 0")).scalar()
        recorded = conn.execute(text(
            "SELECT COUNT(DISTINCT CAST(cycle_date AS TEXT) || account_id) FROM audit_entries"
            " WHERE kind = 'decision' AND payload LIKE :live"),
            {"live": '%"replay":false%'}).scalar()
        assert recorded == decided > 0
        sent = conn.execute(text("SELECT idem_key FROM outbox WHERE status = 'sent'")).all()
        keys = {k for (k,) in conn.execute(text(
            "SELECT entry_key FROM audit_entries WHERE kind = 'message'"))}
        assert sent and {f"message/{k}/sent" for (k,) in sent} <= keys
        # The worker's audit task checkpointed the chain and anchored it in the day's outbox.
        from arrears.audit import checkpoint
        latest = checkpoint.latest(conn)
        assert latest is not None and checkpoint.read_anchor(latest.anchor)["seq"] == latest.seq
        assert str(svc.outbox) in latest.anchor
        daily = checkpoint.verify_daily(conn)
        assert daily.ok and daily.mode == "checkpoint", daily.describe()
    engine.dispose()

    logs = sorted((svc.home / "logs").rglob("*.log"))
    task_logs = [p for p in logs if "dag_id=" in str(p)]
    assert task_logs, "the workers wrote no task log files"
    pii = _personal_data(svc.landing)
    assert pii
    leaks = {}
    for path in task_logs:
        body = _log_text(path)
        found = [v for v in pii if v in body]
        if found:
            leaks[str(path.relative_to(svc.home))] = found[:5]
    assert not leaks, f"personal data in task logs: {leaks}"
    texts = [_log_text(p) for p in task_logs]
    assert any("audit summary" in t for t in texts)
    # The plugin's listener ran in the workers and loaded the day's personal data to mask.
    assert any(re.search(r"personal data masked in this log: [1-9]\d* known values", t)
               for t in texts), "the masking listener did not run in the workers"
