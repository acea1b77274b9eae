"""Retention (CONTRACT §9): each rule at its boundary day (kept the day before, purged the day
after), on a book the real ingest, policy, outbox and batch writers produced; the audit chain,
the manifests and the timelines still verify and answer "why" after the purge. Both databases.

  D0 = 2026-11-06, D = 2026-11-16: the batches scenario (A1 formal notice, A2/A3 letters and
      credit report on D, A6 disputed: never contacted, A7 pre-notice on D)
  D2 = 2026-11-17: only A1 is still in arrears; the extract also has one bad bill row.
Expected last days kept (inclusive):
  quarantine raw row of D2         D2 + 90 d         = 2027-02-15
  A6 (left D2, nothing applies)    D2 + 90 d floor   = 2027-02-15
  messages of D0 / of D            D0 + 3 y / D + 3 y = 2029-11-06 / 2029-11-16
  lawyer letters of D, A7's data   D + 3 y           = 2029-11-16
  bureau file of D                 D + 5 y           = 2031-11-16
  A2, A3 (reported, left D2)       D2 + 5 y          = 2031-11-17
"""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import text

import batches_scenario as scenario
from batches_scenario import D, D0
from factories import landing

D2 = date(2026, 11, 17)


def _rows(engine, sql: str, **params):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


@pytest.fixture
def book(engine, tmp_path):
    from arrears.audit import sweep, trail
    from arrears.batches.bureau import write_credit_report
    from arrears.batches.letters import write_lawyer_letters
    from arrears.outbox_files import as_storage_path, day_folder
    from arrears.cycle.run import CycleRun
    from arrears.delivery.outbox import queue_messages
    from arrears.ingest import ingest_delivery
    from arrears.policy import load_policy

    scenario.build(engine, tmp_path)
    outbox = as_storage_path(tmp_path / "outbox")
    policy = load_policy()
    for day in (D0, D):
        run = CycleRun(day, run_id=f"run-{day}")
        queue_messages(engine, run, policy, "example.com", datetime.now(timezone.utc))
        if day == D:
            write_lawyer_letters(engine, day_folder(outbox, D), D)
            write_credit_report(engine, day_folder(outbox, D), D)
        with engine.begin() as conn:
            found, _ = sweep.collect(conn, run, tmp_path / "outbox")
            trail.append_entries(conn, found)
    folder = landing(tmp_path / "landing" / D2.isoformat(), [scenario.ACCOUNTS[0]],
                     [["B1", "A1", "2026-10", "150.00", "2026-10-27"],
                      ["B9", "A1", "2026-10", "12.00", "2026-13-45"]], [], [])
    ingest_delivery(engine, folder, D2)
    with engine.begin() as conn:  # a delivery receipt and an opt-out reply of A7, on D0 and D
        for rid, kind, status, detail, day in (
                ("receipt:x", "receipt", "delivered", "250 OK a7@example.com", D0),
                ("reply:y", "reply", "TD", "TD 不要再发 13900000007", D)):
            conn.execute(text(
                "INSERT INTO channel_receipts (receipt_id, kind, idem_key, channel, address,"
                " account_id, status, detail, received_at, received_on, posted_by) VALUES"
                " (:r, :k, '', 'sms', '+8613900000007', 'A7', :s, :t, :at, :d, 'hmac:arrears_sms')"),
                {"r": rid, "k": kind, "s": status, "t": detail, "d": day,
                 "at": f"{day}T10:00:00+08:00"})
    return engine, outbox, tmp_path / "outbox"


def _purge(engine, outbox, as_of: date, dry_run: bool = False) -> dict:
    from arrears.policy.retention import load_retention
    from arrears.retention import purge
    return purge.run(engine, outbox, as_of, load_retention(), dry_run=dry_run,
                     run_id=f"test-{as_of}", task_id="purge")["purged"]


def _names(engine) -> dict[str, str]:
    return dict(_rows(engine, "SELECT account_id, MAX(holder_name) FROM extract_accounts"
                              " GROUP BY account_id"))


NOTHING = {"quarantine_raw": 0, "messages": 0, "receipts": 0, "contact_files": 0,
           "bureau_files": 0, "personal_data": 0}


def test_each_rule_keeps_through_its_last_day_and_purges_the_day_after(book):
    from arrears.audit import checkpoint
    from arrears.audit.timeline import account_timeline
    from arrears.batches.manifest import verify as verify_manifest
    engine, outbox, out = book
    messages = dict(_rows(engine, "SELECT cycle_date, COUNT(*) FROM outbox GROUP BY cycle_date"))
    d0_messages, d_messages = (messages[k] for k in sorted(messages))
    assert d0_messages > 0 and d_messages > 0
    letters = sorted(p.name for p in (out / D.isoformat() / "lawyer_letters").glob("*.pdf"))
    assert letters == ["A2.pdf", "A3.pdf"]
    assert _rows(engine, "SELECT COUNT(*) FROM quarantine")[0][0] == 1

    from arrears.audit import pii
    for day in (D0, D, D2):  # the log masker's digests of each extract (the ingest task's)
        assert pii.prepare(engine, day) > 0

    # 90 days: the raw row and A6 (never contacted, never reported).
    assert _purge(engine, outbox, date(2027, 2, 15)) == NOTHING
    # A dry run counts and changes nothing.
    expected = {**NOTHING, "quarantine_raw": 1, "personal_data": 1}
    assert _purge(engine, outbox, date(2027, 2, 16), dry_run=True) == expected
    assert not _rows(engine, "SELECT raw FROM quarantine")[0][0].startswith("sha256:")
    assert _purge(engine, outbox, date(2027, 2, 16)) == expected
    raw, reason = _rows(engine, "SELECT raw, reason FROM quarantine")[0]
    assert raw.startswith("sha256:") and reason  # file, line and reason stay
    names = _names(engine)
    assert names["A6"].startswith("sha256:") and names["A7"] == "赵磊" and names["A2"] == "李娜"
    # The digests of the extracts that held A6's data go with it (rebuilt on demand).
    assert [str(d)[:10] for d, in _rows(engine, "SELECT cycle_date FROM pii_digests")] == [str(D2)]
    assert _purge(engine, outbox, date(2027, 2, 16)) == NOTHING  # idempotent

    # 3 years: D0's messages, then D's messages, letters and A7 (contacted on D).
    assert _purge(engine, outbox, date(2029, 11, 6)) == NOTHING
    assert _purge(engine, outbox, date(2029, 11, 7)) == {**NOTHING, "messages": d0_messages,
                                                         "receipts": 1}
    assert _purge(engine, outbox, date(2029, 11, 16)) == NOTHING
    assert _purge(engine, outbox, date(2029, 11, 17)) == {
        **NOTHING, "messages": d_messages, "receipts": 1, "contact_files": 2, "personal_data": 1}
    receipts = _rows(engine, "SELECT address, detail, status FROM channel_receipts ORDER BY receipt_id")
    assert all(a.startswith("sha256:") and d.startswith("sha256:") for a, d, _ in receipts)
    assert [s for _, _, s in receipts] == ["delivered", "TD"]  # what happened stays
    assert _names(engine)["A7"].startswith("sha256:") and _names(engine)["A2"] == "李娜"
    held = _rows(engine, "SELECT address, body_text, content_sha256 FROM outbox")
    assert all(a.startswith("sha256:") and b == "" and len(c) == 64 for a, b, c in held)
    letters_folder = outbox / D.isoformat() / "lawyer_letters"
    assert not (out / D.isoformat() / "lawyer_letters" / "A2.pdf").exists()
    assert len(verify_manifest(letters_folder)) == 2  # the tombstones carry the listed sha256

    # 5 years: the bureau file of D, then A2 and A3 (reported; their default ended on D2).
    assert _purge(engine, outbox, date(2031, 11, 16)) == NOTHING
    assert _purge(engine, outbox, date(2031, 11, 17)) == {**NOTHING, "bureau_files": 1}
    assert len(verify_manifest(outbox / D.isoformat() / "credit_report")) == 2
    assert _purge(engine, outbox, date(2031, 11, 18)) == {**NOTHING, "personal_data": 2}

    # A1 is still in arrears: its data stays whatever the date.
    assert _purge(engine, outbox, date(2040, 1, 1)) == NOTHING
    assert _names(engine)["A1"] == "王伟"
    held = " ".join(str(v) for row in _rows(engine, "SELECT * FROM extract_accounts")
                    + _rows(engine, "SELECT * FROM outbox") + _rows(engine, "SELECT * FROM case_events")
                    + _rows(engine, "SELECT * FROM channel_receipts")
                    for v in row)
    for gone in ("李娜", "a2@example.com", "13900000002", "上海市浦东新区建设路2号", "Acme",
                 "a7@example.com", "13900000007", "赵磊"):
        assert gone not in held

    # The chain verifies in full after every purge, and A2's timeline still says why.
    with engine.connect() as conn:
        assert checkpoint.verify_full(conn).ok
        steps = account_timeline(conn, "A2")
    kinds = [s.kind for s in steps]
    assert "decision" in kinds and kinds[-1] == "retention"
    assert "negative_credit:default_ended_2026-11-17+5y" in steps[-1].rule
    assert any("lawyer_letter" in s.rule for s in steps if s.kind == "decision")
    retention = _rows(engine, "SELECT payload FROM audit_entries WHERE kind = 'retention'"
                              " AND account_id = ''")
    assert len(retention) == 7  # quarantine, messages and receipts twice, letters, bureau file


def test_policy_retention_section_and_boundaries():
    from arrears.policy.config import PolicyError
    from arrears.policy.retention import (
        AccountRecord, Retention, load_retention, negative_info_reportable,
        newest_expired_start_years, personal_data_last_kept, retention_from_dict,
    )
    rules = load_retention()
    assert rules == Retention(3, 5, 90, 90)
    # 29 February: three years on there is none; 28 February is the last day kept.
    assert newest_expired_start_years(date(2031, 3, 1), 3) == date(2028, 2, 29)
    assert newest_expired_start_years(date(2031, 2, 28), 3) == date(2028, 2, 27)
    record = AccountRecord("X", left_on=date(2026, 1, 10), last_contact=date(2025, 12, 1))
    assert personal_data_last_kept(record, rules) == (
        date(2028, 12, 1), "contact_evidence:2025-12-01+3y")
    assert negative_info_reportable(None, date(2040, 1, 1), rules)
    assert negative_info_reportable(date(2020, 5, 1), date(2025, 5, 1), rules)
    assert not negative_info_reportable(date(2020, 5, 1), date(2025, 5, 2), rules)
    with pytest.raises(PolicyError, match="contact_evidence_years"):
        retention_from_dict({"retention": {"contact_evidence_yrs": 3}})
    with pytest.raises(PolicyError, match="negative"):
        retention_from_dict({"retention": {"quarantine_raw_days": -1}})


def test_the_retention_dag_purges_and_a_dry_run_only_counts(tmp_path, monkeypatch, dagbag):
    """`arrears_retention` through `dag.test`: 03:15 in Shanghai on 2027-02-16 is D2 + 91."""
    import json as json_

    from airflow.utils.state import DagRunState

    from arrears.db import connect
    db = tmp_path / "arrears.db"
    engine = connect(f"sqlite:///{db}")
    scenario.build(engine, tmp_path)
    folder = landing(tmp_path / "landing" / D2.isoformat(), [scenario.ACCOUNTS[0]],
                     [["B9", "A1", "2026-10", "12.00", "2026-13-45"]], [], [])
    from arrears.ingest import ingest_delivery
    ingest_delivery(engine, folder, D2)
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", json_.dumps({"conn_type": "sqlite", "host": str(db)}))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(tmp_path / "outbox"))
    dag = dagbag.get_dag("arrears_retention")
    logical = datetime(2027, 2, 15, 19, 15, tzinfo=timezone.utc)
    run = dag.test(logical_date=logical, run_conf={"dry_run": True})
    assert run.state == DagRunState.SUCCESS
    assert not _rows(engine, "SELECT raw FROM quarantine")[0][0].startswith("sha256:")
    run = dag.test(logical_date=datetime(2027, 2, 15, 19, 16, tzinfo=timezone.utc),
                   run_conf={"dry_run": False})
    assert run.state == DagRunState.SUCCESS
    assert _rows(engine, "SELECT raw FROM quarantine")[0][0].startswith("sha256:")
    # Every account but A1 left on D2; A6 (never contacted, never reported) goes at D2 + 91.
    assert _names(engine)["A6"].startswith("sha256:") and _names(engine)["A1"] == "王伟"
    recorded = _rows(engine, "SELECT account_id, run_id, task_id FROM audit_entries"
                             " WHERE kind = 'retention' ORDER BY seq")
    assert ("", "purge") == (recorded[0][0], recorded[0][2]) and ("A6", "purge") in {
        (a, t) for a, _, t in recorded}


def test_the_command_prints_per_category_what_it_would_purge_then_purges(book, monkeypatch,
                                                                        capsys):
    from arrears import cli
    engine, _, out = book
    monkeypatch.setattr(cli, "_engine", lambda: engine)  # the connection forms: test_audit_cli
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(out))
    assert cli.main(["retention", "--as-of", "2029-11-17", "--dry-run"]) == 0
    printed = capsys.readouterr()
    lines = dict(line.split(None, 1) for line in printed.out.splitlines())
    assert lines["personal_data"].split()[:3] == ["would", "purge", "2"]  # A6 and A7
    assert lines["contact_files"].startswith("would purge        2   (dated on or before 2026-11-16)")
    assert "dry run" in printed.err and "audit trail" not in printed.out
    assert _names(engine)["A7"] == "赵磊"
    assert cli.main(["retention", "--as-of", "2029-11-17"]) == 0
    printed = capsys.readouterr().out
    assert "personal_data    purged        2" in printed and "retention entries appended" in printed
    assert _names(engine)["A7"].startswith("sha256:")
