"""Replays apart (issue 11, CONTRACT §4), through the real DAG (`dag.test`) on SQLite and
PostgreSQL: a dry run with another portfolio over a date that ran writes only under
``<outbox>/<D>/replays/<run id>/`` and into its own decision tables; every real file and row of
D stays as it was, and the next real cycle is byte-identical to one run without the replay.

Mon 16 Nov 2026 (D) and Tue 17 Nov (D+1), default policy for the real runs; the dry run of D
uses ``early_letters`` (lawyer letter from DPD 45 and 100.00 instead of 60 and 200.00):
  L1 500.00, DPD 52 on D: a letter only under early_letters (added)
  L2 150.00, DPD 76: a letter only under early_letters (added)
  L3 500.00, DPD 76: a letter under both (no difference)
  L4 250.00, DPD 59 on D, 60 on D+1: a letter on D only under early_letters, so the real D+1
     sends it (had the dry run's decisions of D counted, the 30-day rule would stop it)
  F1 120.00, DPD 20: formal notice, on the call list under both
"""
from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import text

from cycle_steps import rows
from databases import connection_json
from factories import landing

D, D1 = date(2026, 11, 16), date(2026, 11, 17)
ACCOUNTS = [[a, f"户主{a}", "residential", f"地址{a}", f"{a.lower()}@example.com",
             f"1390000{n:04d}", "zh-CN", "", ""] for n, a in enumerate(("L1", "L2", "L3", "L4", "F1"), 1)]
BILLS = [["B1", "L1", "2026-09", "500.00", "2026-09-25"],
         ["B2", "L2", "2026-08", "150.00", "2026-09-01"],
         ["B3", "L3", "2026-08", "500.00", "2026-09-01"],
         ["B4", "L4", "2026-09", "250.00", "2026-09-18"],
         ["B5", "F1", "2026-10", "120.00", "2026-10-27"]]
# The real record of a date: what a replay must leave as it was.
REAL_TABLES = ("deliveries", "extract_accounts", "extract_bills", "staged_bills", "staged_dates",
               "staged_payments", "quarantine",
               "decisions", "decision_actions", "decision_bills", "outbox", "notice_service",
               "contact_gaps", "disconnection_notices", "disconnection_proposals",
               "disconnection_log", "roll_days", "roll_transitions", "bureau_paid_reports")


def _logical(day: date, hour_utc: int = 0, minute: int = 30) -> datetime:
    return datetime(day.year, day.month, day.day, hour_utc, minute, tzinfo=timezone.utc)


def _run(dagbag, day: date, conf: dict | None = None, hour_utc: int = 0):
    from airflow.utils.state import DagRunState
    # Every param named: dag.test() keeps the last run's conf in the DAG's params.
    conf = {"dry_run": False, "portfolio": "default", **(conf or {})}
    run = dagbag.get_dag("arrears_collection_cycle").test(logical_date=_logical(day, hour_utc),
                                                          run_conf=conf)
    assert run.state == DagRunState.SUCCESS, f"cycle {day} {conf} ended {run.state}"
    return run.run_id


def tree(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, the replays' own folder left out."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()
            and p.relative_to(folder).parts[0] != "replays"}


def real_rows(engine) -> dict[str, list]:
    out = {}
    with engine.connect() as conn:
        for table in REAL_TABLES:
            result = conn.execute(text(f"SELECT * FROM {table}"))
            out[table] = sorted(tuple(str(v) for v in r) for r in result)
        out["audit_entries"] = [tuple(r) for r in conn.execute(text(
            "SELECT seq, entry_key, entry_hash FROM audit_entries ORDER BY seq"))]
    return out


def _world(monkeypatch, db_url: str, root: Path):
    land, outbox = root / "landing", root / "outbox"
    for day in (D, D1):
        landing(land / day.isoformat(), ACCOUNTS, BILLS, [], [])
    for name, value in {"AIRFLOW_VAR_ARREARS_LANDING": str(land),
                        "AIRFLOW_VAR_ARREARS_OUTBOX": str(outbox),
                        "AIRFLOW_VAR_ARREARS_CONTACT_WINDOW": "08:00-21:00",
                        "AIRFLOW_CONN_ARREARS_DB": connection_json(db_url)}.items():
        monkeypatch.setenv(name, value)
    for name in ("AIRFLOW_CONN_ARREARS_SMTP", "AIRFLOW_CONN_ARREARS_SMS"):
        monkeypatch.delenv(name, raising=False)
    return outbox


def _letters(engine, table: str, day: date, run_id: str | None = None) -> set[str]:
    where = " AND run_id = :r" if run_id else ""
    return {a for (a,) in rows(engine, f"SELECT account_id FROM {table} WHERE cycle_date = :d"
                                       f" AND action = 'lawyer_letter'{where}", d=day, r=run_id)}


def test_a_dry_run_over_a_date_that_ran_changes_nothing_real(tmp_path, monkeypatch, dagbag, engine,
                                                             db_url, twin_db_url,
                                                             dispatch_on_cycle_date):
    from arrears.db import connect
    # --- world A: D for real, a dry run of D with another portfolio, then D+1 for real -------
    outbox = _world(monkeypatch, db_url, tmp_path / "a")
    _run(dagbag, D)
    files_before, rows_before = tree(outbox / D.isoformat()), real_rows(engine)
    assert "lawyer_letters/manifest.csv" in files_before and "mail" in {
        Path(f).parts[0] for f in files_before}
    replay_run = _run(dagbag, D, {"dry_run": True, "portfolio": "early_letters"}, hour_utc=1)

    assert tree(outbox / D.isoformat()) == files_before            # every real file, byte for byte
    after = real_rows(engine)
    new_entries = after.pop("audit_entries")[len(rows_before["audit_entries"]):]
    before_entries = rows_before.pop("audit_entries")
    assert after == rows_before                                     # every real row of D
    assert real_rows(engine)["audit_entries"][:len(before_entries)] == before_entries
    assert new_entries and all(key.startswith(("replay/", "cycle/")) and replay_run in key
                               for _, key, _ in new_entries)       # only the replay's own keys

    own = outbox / D.isoformat() / "replays" / replay_run
    summary = json.loads((own / "cycle_summary.json").read_text())
    assert summary["replay"] is True and summary["run_id"] == replay_run
    assert summary["by_action"]["lawyer_letter"] == 4
    assert summary["differences"]["by_action"]["lawyer_letter"] == {"added": 3, "removed": 0}
    assert {a: c for a, c in summary["differences"]["by_action"].items()
            if c != {"added": 0, "removed": 0}} == {"lawyer_letter": {"added": 3, "removed": 0}}
    assert (own / "differences.csv").read_text().splitlines() == [
        "action,change,account_id", "lawyer_letter,added,L1", "lawyer_letter,added,L2",
        "lawyer_letter,added,L4"]
    report = (own / "cycle_report.html").read_text()
    assert report.index("REPLAY") < report.index("<h1>")           # at the top
    assert "REPLAY" not in (outbox / D.isoformat() / "cycle_report.html").read_text()
    assert sorted(p.name for p in (own / "lawyer_letters").iterdir()) == [
        "L1.pdf", "L2.pdf", "L3.pdf", "L4.pdf", "REPLAY", "manifest.csv"]
    assert (own / "decisions.csv").is_file() and (own / "call_list.csv").is_file()
    assert not (own / "mail").exists() and not (own / "sms.jsonl").exists()
    assert _letters(engine, "decision_actions", D) == {"L3"}
    assert _letters(engine, "replay_decision_actions", D, replay_run) == {"L1", "L2", "L3", "L4"}
    _auditors_see_the_replay_apart(engine, replay_run)

    _run(dagbag, D1)
    assert _letters(engine, "decision_actions", D1) == {"L4"}       # the real D+1 reads the real D
    files_a = tree(outbox / D1.isoformat())

    # --- world B: D and D+1 for real, no replay: the same D+1, byte for byte --------------------
    outbox_b = _world(monkeypatch, twin_db_url, tmp_path / "b")
    _run(dagbag, D)
    _run(dagbag, D1)
    files_b = tree(outbox_b / D1.isoformat())
    # Every file of the real D+1 alike, but the audit checkpoint: it anchors the one hash chain,
    # which holds the replay's own entries in world A (so its sequence number and hash differ).
    assert ({f: h for f, h in files_b.items() if not f.startswith("audit_checkpoints/")}
            == {f: h for f, h in files_a.items() if not f.startswith("audit_checkpoints/")})
    assert [Path(f).parent.name for f in files_a if f.startswith("audit_checkpoints/")] == [
        "audit_checkpoints"]
    twin = connect(twin_db_url)
    decided = ("SELECT account_id, stage, dpd, outstanding_fen, late_fee_fen, actions, holds,"
               " message_kinds, reasons, policy_version, replay, segment FROM decisions"
               " WHERE cycle_date = :d ORDER BY account_id")   # run ids differ between worlds
    assert rows(engine, decided, d=D1) == rows(twin, decided, d=D1)
    for table in ("decision_actions", "decision_bills"):
        assert (sorted(rows(engine, f"SELECT * FROM {table} WHERE cycle_date = :d", d=D1))
                == sorted(rows(twin, f"SELECT * FROM {table} WHERE cycle_date = :d", d=D1))), table
    assert (rows(engine, "SELECT idem_key, status, kinds, content_sha256 FROM outbox"
                         " WHERE cycle_date = :d ORDER BY idem_key", d=D1)
            == rows(twin, "SELECT idem_key, status, kinds, content_sha256 FROM outbox"
                          " WHERE cycle_date = :d ORDER BY idem_key", d=D1))


def _auditors_see_the_replay_apart(engine, replay_run: str) -> None:
    """The timeline of what happened holds nothing of the replay; the replay's own section
    holds its decision and its letter; the page shows both tables apart."""
    from arrears.audit.timeline import account_timeline, cycle_summary, replay_timeline
    from arrears.audit.web import _templates
    with engine.connect() as conn:
        happened, replays = account_timeline(conn, "L1"), replay_timeline(conn, "L1")
        day = cycle_summary(conn, D)
    assert happened and all(s.run_id != replay_run and not s.replay for s in happened)
    assert not any("lawyer_letter" in s.what for s in happened)
    assert [(s.kind, s.run_id) for s in replays] == [("decision", replay_run), ("batch_file", replay_run)]
    assert "lawyer_letter" in replays[0].what and "L1.pdf" in replays[1].what
    assert sum(day["decisions_by_stage"].values()) == 5                 # the real decisions only
    assert day["replays"]["decisions_by_run"] == {replay_run: 5}
    page = _templates.get_template("auditor_page.html").render(
        account="L1", steps=[s.__dict__ for s in happened], replays=[s.__dict__ for s in replays],
        user="auditor", prefix="")
    timeline, replayed = page.split('id="replays-title"')
    assert replay_run not in timeline and replay_run in replayed and "L1.pdf" in replayed


def test_differences_count_added_and_removed_accounts_per_action(engine, tmp_path):
    from arrears.cycle.outputs import write_differences
    from arrears.records.decided import Decided
    with engine.begin() as conn:
        for table, run, account, action in (
                ("decision_actions", None, "A1", "lawyer_letter"),
                ("decision_actions", None, "A2", "lawyer_letter"),
                ("decision_actions", None, "A2", "email"),
                ("decision_actions", None, "A3", "sms"),
                ("replay_decision_actions", "r1", "A2", "lawyer_letter"),
                ("replay_decision_actions", "r1", "A3", "sms"),
                ("replay_decision_actions", "r1", "A3", "credit_report"),
                ("replay_decision_actions", "r1", "A4", "credit_report"),
                ("replay_decision_actions", "r2", "A1", "email")):      # another replay: not compared
            cols, vals = ("cycle_date, account_id, action", ":d, :a, :x")
            if run:
                cols, vals = "run_id, " + cols, ":r, " + vals
            conn.execute(text(f"INSERT INTO {table} ({cols}) VALUES ({vals})"),
                         {"d": D, "a": account, "x": action, "r": run})
        conn.execute(text(
            "INSERT INTO decisions (cycle_date, account_id, stage, stage_entered_on, dpd,"
            " outstanding_fen, late_fee_fen, actions, holds, message_kinds, reasons, policy_version)"
            " VALUES (:d, 'A1', 'escalation', :d, 70, 1, 0, '', '', '', '', 'v1')"), {"d": D})
    got = write_differences(engine, tmp_path, Decided(D, "r1"))
    changed = {a: c for a, c in got["by_action"].items() if c != {"added": 0, "removed": 0}}
    assert changed == {"email": {"added": 0, "removed": 1}, "lawyer_letter": {"added": 0, "removed": 1},
                       "credit_report": {"added": 2, "removed": 0}}
    assert got["accounts_changed"] == 4
    assert (tmp_path / "differences.csv").read_text().splitlines() == [   # in the replay's folder
        "action,change,account_id", "email,removed,A2", "lawyer_letter,removed,A1",
        "credit_report,added,A3", "credit_report,added,A4"]
    # Where D never ran for real there is nothing to compare with.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM decisions"))
    assert write_differences(engine, tmp_path, Decided(D, "r1")) is None
