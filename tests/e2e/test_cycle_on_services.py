"""The collection cycle on real services: a scheduled-style run, then `airflow backfill create` over
past dates; the backfilled days are replays (their own decisions and outputs, no message sent).
Then a backfill that reprocesses the date that ran: its files and rows stay byte for byte, the
replay's go to its own storage and folder.

Runs against the scheduler, dag-processor, triggerer, api-server and a Celery worker started by
the `services` fixture (PostgreSQL metadata, Redis broker, PostgreSQL collection database).
"""
from __future__ import annotations

import json
import urllib.parse
from datetime import date, datetime, time, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text

from devtools import datagen
from e2e_services import DAG_ID

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ACCOUNTS = 80


def last_schedule_date(now: datetime) -> date:
    """Cycle date of the latest 08:30 Asia/Shanghai (00:30 UTC) at or before now."""
    fire = datetime.combine(now.date(), time(0, 30), timezone.utc)
    return (fire if fire <= now else fire - timedelta(days=1)).date()


def logical(day: date) -> str:
    return f"{day.isoformat()}T00:30:00Z"


def sent_messages(outbox) -> dict[str, int]:
    """Messages the delivery step wrote, per file kind, over the whole outbox."""
    sms = sum(len(p.read_text().splitlines()) for p in outbox.rglob("sms.jsonl"))
    return {"eml": len(list(outbox.rglob("*.eml"))), "sms": sms}


def summary(outbox, day: date, replay_run: str = "") -> dict:
    folder = outbox / day.isoformat()
    if replay_run:
        folder = folder / "replays" / replay_run
    return json.loads((folder / "cycle_summary.json").read_text())


def tree(folder) -> dict[str, str]:
    """sha256 of every file under ``folder``, the replays' own folder left out."""
    import hashlib
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()
            and p.relative_to(folder).parts[0] != "replays"}


def differences(real_csv, replay_csv) -> dict:
    """Per action, the accounts a replay's decisions.csv adds and removes against the real one."""
    import csv
    import io

    def pairs(path):
        return {(r["account_id"], a) for r in csv.DictReader(io.StringIO(path.read_text()))
                for a in r["actions"].split(";") if a}
    real, mine = pairs(real_csv), pairs(replay_csv)
    from arrears.model import ACTIONS
    return {a: {"added": sum(1 for _, x in mine - real if x == a),
                "removed": sum(1 for _, x in real - mine if x == a)} for a in ACTIONS}


# The real record of a date, which a replay must leave as it was.
REAL = ("decisions", "decision_actions", "decision_bills", "outbox", "staged_bills",
        "extract_accounts", "deliveries", "notice_service", "disconnection_notices",
        "disconnection_proposals")


def real_rows(url: str, run_id: str) -> dict:
    """Every row of the real record, and the real run's own cycle_runs row."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = {t: sorted(tuple(str(v) for v in r) for r in conn.execute(text(
                f"SELECT * FROM {t}"))) for t in REAL}
            found["the run"] = [tuple(r) for r in conn.execute(text(
                "SELECT * FROM cycle_runs WHERE run_id = :r"), {"r": run_id})]
            return found
    finally:
        engine.dispose()


def test_scheduled_run_then_backfill_replays(services):
    svc = services
    # The scheduled run: the scheduler creates the run of the latest 08:30 when the DAG is
    # unpaused; should it not, the same run is triggered through the REST API with that date.
    day = last_schedule_date(datetime.now(timezone.utc))
    backfill = [day - timedelta(days=n) for n in (4, 3, 2)]
    datagen.generate(svc.landing, backfill[0], (day - backfill[0]).days + 1, ACCOUNTS, seed=11)

    svc.wait("the DAG to be parsed and serialized",
             lambda: svc.rest("GET", f"/api/v2/dags/{DAG_ID}", ok=(200, 404))[0] == 200, 180)

    # The run conf is validated by the DAG's Params before any run exists.
    status, _ = svc.rest("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                         {"logical_date": logical(day), "conf": {"allow_contact": "yes"}},
                         ok=(400, 422))
    assert status in (400, 422)

    svc.rest("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})

    def scheduled_run():
        _, runs = svc.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=10")
        return next((r for r in runs["dag_runs"] if r["logical_date"] == logical(day)), None)
    try:
        run = svc.wait("the scheduler to create the scheduled run", scheduled_run, 60)
    except AssertionError:
        _, run = svc.rest("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                          {"dag_run_id": f"scheduled-style__{day}", "logical_date": logical(day),
                           "conf": {}})
    svc.wait_run(run["dag_run_id"], timeout=300)
    # Every task ran in the pools the setup created (as airflow-init does).
    rid = urllib.parse.quote(run["dag_run_id"], safe="")
    _, tis = svc.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{rid}/taskInstances?limit=100")
    pools = {ti["task_id"]: ti["pool"] for ti in tis["task_instances"]}
    assert set(pools.values()) <= {"arrears_db", "arrears_smtp"}, pools
    assert pools["dispatch_messages"] == "arrears_smtp" and pools["ingest"] == "arrears_db"
    normal = summary(svc.outbox, day)
    assert normal["replay"] is False and normal["accounts"] > 0
    before = sent_messages(svc.outbox)
    assert before["eml"] > 0 and before["sms"] > 0   # the normal run did contact customers

    svc.airflow("backfill", "create", "--dag-id", DAG_ID,
                "--from-date", f"{backfill[0]}T00:00:00+08:00",
                "--to-date", f"{backfill[-1]}T23:59:59+08:00", "--reprocess-behavior", "none")

    def backfill_runs():
        _, runs = svc.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=50")
        runs = runs["dag_runs"]
        if len(runs) == len(backfill) and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        return None
    runs = svc.wait("the backfill runs", backfill_runs, timeout=420, every=5)
    assert all(r["state"] == "success" for r in runs), svc.run_report()
    assert sorted(r["logical_date"][:10] for r in runs) == [d.isoformat() for d in backfill]
    run_of = {date.fromisoformat(r["logical_date"][:10]): r["dag_run_id"] for r in runs}

    # Replays: outputs say so (in their own folder), nothing was sent, and the database records
    # the runs as replays and their decisions in storage of their own.
    for past in backfill:
        assert summary(svc.outbox, past, run_of[past])["replay"] is True
        assert summary(svc.outbox, past, run_of[past])["differences"] is None  # never ran for real
        assert not (svc.outbox / past.isoformat() / "cycle_summary.json").exists()
        assert not (svc.outbox / past.isoformat() / "mail").exists()
        assert not (svc.outbox / past.isoformat() / "sms.jsonl").exists()
    assert sent_messages(svc.outbox) == before
    engine = create_engine(svc.data_url)
    try:
        with engine.connect() as conn:
            recorded = conn.execute(text(
                "SELECT cycle_date, run_type, replay, allow_contact FROM cycle_runs"
                " ORDER BY cycle_date")).all()
            real = dict(conn.execute(text(
                "SELECT cycle_date, MAX(replay) FROM decisions GROUP BY cycle_date")).all())
            replayed = dict(conn.execute(text(
                "SELECT cycle_date, MIN(run_id) FROM replay_decisions GROUP BY cycle_date")).all())
    finally:
        engine.dispose()
    by_date = {row[0]: row[1:] for row in recorded}
    for past in backfill:
        assert by_date[past] == ("backfill", 1, 0)
        assert replayed[past] == run_of[past] and past not in real
    assert by_date[day] == (run["run_type"], 0, 0)
    assert real == {day: 0}

    # A backfill that reprocesses the date that ran: a replay of it, apart from what happened.
    # (One backfill per DAG at a time: the first must be marked complete by the scheduler.)
    def backfills_done():
        _, found = svc.rest("GET", f"/api/v2/backfills?dag_id={DAG_ID}")
        return all(b.get("completed_at") for b in found["backfills"]) or None
    svc.wait("the first backfill to complete", backfills_done, timeout=180, every=5)
    files, rows = tree(svc.outbox / day.isoformat()), real_rows(svc.data_url, run["dag_run_id"])
    svc.airflow("backfill", "create", "--dag-id", DAG_ID,
                "--from-date", f"{day}T00:00:00+08:00", "--to-date", f"{day}T23:59:59+08:00",
                "--reprocess-behavior", "completed")

    def replay_of_day():
        _, found = svc.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=50")
        mine = [r for r in found["dag_runs"] if r["logical_date"][:10] == day.isoformat()]
        return mine[0] if mine and mine[0]["state"] in ("success", "failed") else None
    again = svc.wait("the backfill of the date that ran", replay_of_day, timeout=420, every=5)
    assert again["state"] == "success", svc.run_report()
    assert tree(svc.outbox / day.isoformat()) == files            # every real file, byte for byte
    assert real_rows(svc.data_url, run["dag_run_id"]) == rows     # every real row
    own = summary(svc.outbox, day, again["dag_run_id"])
    assert own["replay"] is True and own["messages"]["sent"] == 0
    # Its differences are those of its decisions.csv against the real one, action by action
    # (not none: the backfills above loaded the extracts of earlier dates that D's real run
    # never saw, so the segments their payments give can differ).
    assert own["differences"]["by_action"] == differences(
        svc.outbox / day.isoformat() / "decisions.csv",
        svc.outbox / day.isoformat() / "replays" / again["dag_run_id"] / "decisions.csv")
    report = (svc.outbox / day.isoformat() / "replays" / again["dag_run_id"] / "cycle_report.html")
    assert report.read_text().index("REPLAY") < report.read_text().index("<h1>")
    assert sent_messages(svc.outbox) == before
