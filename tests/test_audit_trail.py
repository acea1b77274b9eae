"""The hash-chained audit trail: appends, idempotency, the append-only guard and the verifier."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from arrears.audit import trail
from arrears.audit.trail import Entry


def _entries(n, day=date(2026, 11, 16)):
    return [Entry(key=f"decision/{day}/A{i}", kind="decision", account_id=f"A{i}", cycle_date=day,
                  run_id="scheduled__x", task_id="audit", try_number=1,
                  payload={"stage": "reminder", "reasons": ["stage_reminder"], "dpd": i})
            for i in range(n)]


def _drop_guard(conn, dialect):
    # What someone with DBA rights could do; the chain must still give them away.
    if dialect == "postgresql":
        conn.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))
    else:
        conn.execute(text("DROP TRIGGER audit_entries_no_update"))
        conn.execute(text("DROP TRIGGER audit_entries_no_delete"))


def test_append_is_idempotent_and_chain_verifies(engine):
    assert trail.record(engine, _entries(5)) == 5
    assert trail.record(engine, _entries(7)) == 2  # the first five are already there
    with engine.begin() as conn:
        assert not trail.append(conn, kind="decision", key="decision/2026-11-16/A1", payload={})
        assert trail.append(conn, kind="message", key="message/x", payload={"channel": "sms"},
                            account_id="A1", cycle_date=date(2026, 11, 16))
    with engine.connect() as conn:
        result = trail.verify(conn)
        assert result.ok, result.describe()
        assert result.entries == 8
        got = trail.entries(conn, account_id="A1")
    assert [e.kind for e in got] == ["decision", "message"]
    assert got[0].payload["reasons"] == ["stage_reminder"]
    assert got[0].cycle_date == date(2026, 11, 16)
    assert got[1].prev_hash != trail.GENESIS


def test_updates_and_deletes_are_refused(engine):
    trail.record(engine, _entries(2))
    for statement in ("UPDATE audit_entries SET payload = '{}' WHERE seq = 1",
                      "DELETE FROM audit_entries WHERE seq = 2"):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(statement))


def test_verifier_names_the_tampered_entry(engine):
    trail.record(engine, _entries(6))
    with engine.begin() as conn:
        _drop_guard(conn, engine.dialect.name)
        conn.execute(text("UPDATE audit_entries SET payload = :p WHERE seq = 4"),
                     {"p": '{"dpd":99}'})
    with engine.connect() as conn:
        result = trail.verify(conn)
    assert not result.ok and result.first_broken_seq == 4
    assert "does not match its hash" in result.problem


def test_verifier_names_the_entry_after_a_rehashed_row(engine):
    """A forger who also recomputes the tampered row's own hash breaks the next link."""
    trail.record(engine, _entries(6))
    with engine.begin() as conn:
        _drop_guard(conn, engine.dialect.name)
        row = conn.execute(text("SELECT seq, entry_key, kind, account_id, cycle_date, run_id,"
                                " task_id, try_number, recorded_at, prev_hash FROM audit_entries"
                                " WHERE seq = 3")).one()
        forged = '{"dpd":0}'
        h = trail.entry_hash(row.prev_hash, row.seq, row.entry_key, row.kind, row.account_id,
                             row.cycle_date, row.run_id, row.task_id, row.try_number, forged,
                             row.recorded_at)
        conn.execute(text("UPDATE audit_entries SET payload = :p, entry_hash = :h WHERE seq = 3"),
                     {"p": forged, "h": h})
    with engine.connect() as conn:
        result = trail.verify(conn)
    assert not result.ok and result.first_broken_seq == 4
    assert "previous-hash" in result.problem


def test_verifier_notices_deleted_entries(engine):
    trail.record(engine, _entries(5))
    with engine.begin() as conn:
        _drop_guard(conn, engine.dialect.name)
        conn.execute(text("DELETE FROM audit_entries WHERE seq = 2"))
    with engine.connect() as conn:
        result = trail.verify(conn)
    assert not result.ok and result.first_broken_seq == 2
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE seq >= 4"))
    with engine.connect() as conn:
        # entry 2 is still the first broken link; cutting the end alone is caught by the head
        assert trail.verify(conn).first_broken_seq == 2


def test_cut_off_end_is_caught_by_the_head(engine):
    trail.record(engine, _entries(5))
    with engine.begin() as conn:
        _drop_guard(conn, engine.dialect.name)
        conn.execute(text("DELETE FROM audit_entries WHERE seq = 5"))
    with engine.connect() as conn:
        result = trail.verify(conn)
    assert not result.ok and result.first_broken_seq == 5 and "cut off" in result.problem


def test_concurrent_appenders_keep_one_chain(db_url):
    """Two writers appending at once wait for each other: no fork, no gap."""
    import threading

    from arrears.db import connect
    eng = connect(db_url)
    errors = []

    def writer(tag):
        try:
            for i in range(10):
                trail.record(eng, [Entry(key=f"t/{tag}/{i}", kind="cycle", payload={"i": i})])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with eng.connect() as conn:
        result = trail.verify(conn)
    assert result.ok and result.entries == 20, result.describe()
