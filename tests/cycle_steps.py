"""Drive the cycle's task functions the way the DAG's tasks call them, with a task context built
here (run id, run type, conf), on the test's collection database. Used by the backfill and fault
tests: `dag.test` cannot make a backfill run, and a fault needs to strike inside one step."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import text

PARAMS = {"encoding": None, "dry_run": False, "allow_contact": False, "portfolio": "default",
          "landing_wait_minutes": 360}


def context(day: date, run_type: str = "scheduled", conf: dict | None = None,
            run_id: str | None = None, task_id: str = "", try_number: int = 1) -> dict:
    logical = datetime(day.year, day.month, day.day, 0, 30, tzinfo=timezone.utc)  # 08:30 Shanghai
    run_id = run_id or f"{run_type}__{logical.isoformat()}"
    dag_run = SimpleNamespace(run_id=run_id, run_type=run_type, run_after=logical,
                              start_date=datetime.now(timezone.utc), conf=conf or {})
    ti = SimpleNamespace(task_id=task_id, try_number=try_number, max_tries=0)
    return {"dag_run": dag_run, "logical_date": logical, "params": {**PARAMS, **(conf or {})},
            "ti": ti}


def use_database(monkeypatch, db_url: str, landing: Path, outbox: Path) -> None:
    """Point the steps at the test's database and folders; contact window open all day."""
    from arrears import orchestration
    from arrears.db import connect
    monkeypatch.setattr(orchestration, "engine", lambda: connect(db_url))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_LANDING", str(landing))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(outbox))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_CONTACT_WINDOW", "00:00-24:00")
    for name in ("AIRFLOW_CONN_ARREARS_SMTP", "AIRFLOW_CONN_ARREARS_SMS"):
        monkeypatch.delenv(name, raising=False)


def run_cycle(day: date, run_type: str = "scheduled", conf: dict | None = None,
              run_id: str | None = None, deliver: bool = True) -> dict:
    """ingest -> stage -> decide -> publish -> queue -> dispatch, as the DAG orders them."""
    from arrears.cycle import tasks as cycle_steps
    from arrears.ingest import tasks as ingest_steps
    from arrears.delivery import tasks as delivery
    results = {}
    for name, step in (("ingest", ingest_steps.ingest), ("stage", cycle_steps.stage), ("decide", cycle_steps.decide),
                       ("publish", cycle_steps.publish)):
        results[name] = step(context(day, run_type, conf, run_id, name))
    if deliver:
        results["queue"] = delivery.queue(context(day, run_type, conf, run_id, "queue_messages"))
        results["dispatch"] = delivery.dispatch_cycle(
            context(day, run_type, conf, run_id, "dispatch_messages"))
    return results


def mails(outbox: Path, day: date | None = None) -> list[str]:
    root = outbox / day.isoformat() / "mail" if day else outbox
    return sorted(p.name for p in root.rglob("*.eml")) if root.exists() else []


def sms(outbox: Path, day: date | None = None) -> list[dict]:
    files = [outbox / day.isoformat() / "sms.jsonl"] if day else sorted(outbox.rglob("sms.jsonl"))
    return [json.loads(line) for f in files if f.exists() for line in f.read_text().splitlines()]


def summary(outbox: Path, day: date) -> dict:
    return json.loads((outbox / day.isoformat() / "cycle_summary.json").read_text())


def replay_folder(outbox: Path, day: date, run_type: str = "scheduled", run_id: str | None = None
                  ) -> Path:
    """Where a replay run of D (backfill, dry run) puts its files: <outbox>/<D>/replays/<run id>/."""
    return outbox / day.isoformat() / "replays" / context(day, run_type, run_id=run_id)["dag_run"].run_id


def replay_summary(outbox: Path, day: date, run_type: str = "scheduled") -> dict:
    return json.loads((replay_folder(outbox, day, run_type) / "cycle_summary.json").read_text())


def rows(engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def snapshot(engine, tables=("deliveries", "extract_accounts", "extract_bills", "payments",
                             "payment_sightings", "case_events", "quarantine", "staged_bills",
                             "decisions", "decision_bills")) -> dict:
    """Every row of the cycle's tables, ordered, without ingestion timestamps."""
    out = {}
    with engine.connect() as conn:
        for table in tables:
            result = conn.execute(text(f"SELECT * FROM {table}"))
            cols = list(result.keys())
            keep = [i for i, c in enumerate(cols) if c not in ("ingested_at",)]
            out[table] = sorted(tuple(str(r[i]) for i in keep) for r in result)
    return out
