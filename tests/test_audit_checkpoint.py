"""Audit chain checkpoints: the daily verification reads only what was appended since the last
checkpoint (counted), a tamper after a checkpoint is still caught, a rewritten checkpoint is
caught by its anchor in the outbox, and `verify --full` catches what the daily check cannot.
Both databases."""
from __future__ import annotations

import json
from datetime import date

from sqlalchemy import text

from arrears.audit import checkpoint, trail
from arrears.audit.trail import Entry
from test_audit_trail import _drop_guard

D1, D2 = date(2026, 11, 16), date(2026, 11, 17)


def _entries(n, day, start=0):
    return [Entry(key=f"decision/{day}/A{i}", kind="decision", account_id=f"A{i}", cycle_date=day,
                  run_id="scheduled__x", task_id="decide", try_number=1,
                  payload={"stage": "reminder", "dpd": i}) for i in range(start, start + n)]


def _checkpointed_day(engine, outbox, day, n, start=0):
    trail.record(engine, _entries(n, day, start))
    with engine.begin() as conn:
        check = checkpoint.verify_daily(conn)
        assert check.ok, check.describe()
        return check, checkpoint.write(conn, outbox, day, check)


def test_daily_verification_reads_only_the_entries_since_the_checkpoint(engine, tmp_path):
    outbox = tmp_path / "outbox"
    first, cp1 = _checkpointed_day(engine, outbox, D1, 500)
    assert first.mode == "full" and first.result.entries == 500 and "no checkpoint" in first.note
    assert cp1.seq == 500
    anchor = json.loads(checkpoint.anchor_path(outbox, D1, 500).read_text())
    assert anchor["seq"] == 500 and anchor["entry_hash"] == cp1.entry_hash
    second, cp2 = _checkpointed_day(engine, outbox, D2, 7, start=500)
    assert second.mode == "checkpoint" and second.since == cp1
    assert second.result.entries == 7 and second.result.head_seq == 507  # not 507 read
    assert cp2.seq == 507 and checkpoint.anchor_path(outbox, D2, 507).exists()
    with engine.connect() as conn:
        assert checkpoint.verify_daily(conn).result.entries == 0  # nothing new since
        full = checkpoint.verify_full(conn)
    assert full.ok and full.result.entries == 507
    # No new entries: no second checkpoint of the same head.
    with engine.begin() as conn:
        assert checkpoint.write(conn, outbox, D2, checkpoint.verify_daily(conn)) is None
    # D2 re-run: a second checkpoint of the same day, each with its own anchor.
    third, cp3 = _checkpointed_day(engine, outbox, D2, 3, start=507)
    assert third.result.entries == 3 and cp3.seq == 510
    with engine.connect() as conn:
        assert checkpoint.verify_full(conn).ok and checkpoint.verify_full(conn).note == ""


def test_a_tamper_after_the_checkpoint_is_detected(engine, tmp_path):
    outbox = tmp_path / "outbox"
    _checkpointed_day(engine, outbox, D1, 20)
    trail.record(engine, _entries(10, D2, start=20))
    with engine.begin() as conn:
        _drop_guard(conn, engine.dialect.name)
        conn.execute(text("UPDATE audit_entries SET payload = :p WHERE seq = 25"),
                     {"p": json.dumps({"stage": "escalation", "dpd": 99})})
    with engine.connect() as conn:
        check = checkpoint.verify_daily(conn)
    assert not check.ok and check.mode == "checkpoint"
    assert check.result.first_broken_seq == 25 and "content" in check.result.problem
    assert check.result.entries == 5  # read #21..#25 and stopped there
    # The audit task would not move the checkpoint past a broken chain.
    with engine.begin() as conn:
        assert checkpoint.write(conn, outbox, D2, check) is None


def test_rewriting_the_chain_and_the_checkpoint_disagrees_with_the_anchor(engine, tmp_path):
    outbox = tmp_path / "outbox"
    _, cp = _checkpointed_day(engine, outbox, D1, 10)
    # Someone changes entry 3 and recomputes every hash after it, head and checkpoint row included.
    with engine.begin() as conn:
        _drop_guard(conn, engine.dialect.name)
        conn.execute(text("UPDATE audit_entries SET payload = :p WHERE seq = 3"),
                     {"p": json.dumps({"stage": "current", "dpd": 0})})
        prev = conn.execute(text("SELECT entry_hash FROM audit_entries WHERE seq = 2")).scalar()
        for row in conn.execute(text("SELECT seq, entry_key, kind, account_id, cycle_date, run_id,"
                                     " task_id, try_number, payload, recorded_at FROM audit_entries"
                                     " WHERE seq >= 3 ORDER BY seq")).all():
            h = trail.entry_hash(prev, *row)
            conn.execute(text("UPDATE audit_entries SET prev_hash = :p, entry_hash = :h"
                              " WHERE seq = :s"), {"p": prev, "h": h, "s": row[0]})
            prev = h
        conn.execute(text("UPDATE audit_chain_head SET last_hash = :h"), {"h": prev})
        conn.execute(text("UPDATE audit_checkpoints SET entry_hash = :h"), {"h": prev})
    with engine.connect() as conn:
        assert trail.verify(conn).ok  # the rewritten chain is consistent in itself ...
        daily, full = checkpoint.verify_daily(conn), checkpoint.verify_full(conn)
    # ... but not with the anchor written into the outbox on D1.
    assert not daily.ok and "anchor" in daily.result.problem and daily.result.first_broken_seq == 10
    assert not full.ok and "anchor" in full.result.problem


def test_an_edit_before_the_checkpoint_needs_the_full_verification(engine, tmp_path):
    outbox = tmp_path / "outbox"
    _checkpointed_day(engine, outbox, D1, 10)
    with engine.begin() as conn:
        _drop_guard(conn, engine.dialect.name)
        conn.execute(text("UPDATE audit_entries SET payload = '{}' WHERE seq = 4"))
    with engine.connect() as conn:
        assert checkpoint.verify_daily(conn).ok  # its cost stays flat: it reads nothing old
        full = checkpoint.verify_full(conn)
    assert not full.ok and full.result.first_broken_seq == 4


def test_a_missing_anchor_falls_back_to_the_full_verification(engine, tmp_path):
    outbox = tmp_path / "outbox"
    _checkpointed_day(engine, outbox, D1, 10)
    checkpoint.anchor_path(outbox, D1, 10).unlink()
    with engine.connect() as conn:
        check = checkpoint.verify_daily(conn)
    assert check.ok and check.mode == "full" and check.result.entries == 10
    assert "missing" in check.note


def test_cli_verifies_from_the_checkpoint_or_in_full(engine, tmp_path, monkeypatch, capsys):
    from arrears import cli
    from arrears.cli import main
    monkeypatch.setattr(cli, "_engine", lambda: engine)  # the connection forms: test_audit_cli
    outbox = tmp_path / "outbox"
    _checkpointed_day(engine, outbox, D1, 30)
    trail.record(engine, _entries(4, D2, start=30))
    assert main(["audit", "verify"]) == 0
    assert "from checkpoint #30 of 2026-11-16 (4 entries read since)" in capsys.readouterr().out
    assert main(["audit", "verify", "--full"]) == 0
    assert "full verification (34 entries read)" in capsys.readouterr().out
    with engine.begin() as conn:
        _drop_guard(conn, engine.dialect.name)
        conn.execute(text("UPDATE audit_entries SET payload = '{}' WHERE seq = 2"))
    assert main(["audit", "verify"]) == 0
    assert main(["audit", "verify", "--full"]) == 1
    assert "BROKEN at entry #2" in capsys.readouterr().out
