"""The audit trail: append-only, hash-chained entries in the collection database.

Every entry names what it records by a natural key (``entry_key``): appending a key that is
already there appends nothing, so a retried task or a re-run cycle never duplicates an entry.
Each entry's hash covers the previous entry's hash, so changing, removing or reordering any entry
breaks the chain from that point on; :func:`verify` names the first broken link.

Writers are serialised on the single ``audit_chain_head`` row: its UPDATE is the first statement
of every append transaction (a row lock on PostgreSQL, the database write lock on SQLite, i.e.
``BEGIN IMMEDIATE`` semantics), so two tasks appending at once wait for each other instead of
forking the chain. Entries carry no personal data: ids, codes, amounts and hashes only.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone

from sqlalchemy import Connection, Engine, text

GENESIS = "0" * 64
KINDS = ("decision", "message", "batch_file", "notice", "proposal", "approval", "order",
         "disconnection_event", "quarantine", "cycle", "case_event", "retention",
         "receipt")


@dataclass(frozen=True)
class Entry:
    """One thing to record. ``key`` is its natural key (e.g. ``decision/2026-11-16/A1``)."""
    key: str
    kind: str
    payload: dict
    account_id: str = ""
    cycle_date: date | None = None
    run_id: str = ""
    task_id: str = ""
    try_number: int = 0


@dataclass(frozen=True)
class Recorded:
    seq: int
    entry_key: str
    kind: str
    account_id: str
    cycle_date: date | None
    run_id: str
    task_id: str
    try_number: int
    payload: dict
    recorded_at: str
    prev_hash: str
    entry_hash: str


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    first_broken_seq: int | None = None
    problem: str = ""
    head_seq: int = 0

    def describe(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.entries} entries, head #{self.head_seq}"
        return (f"audit chain BROKEN at entry #{self.first_broken_seq}: {self.problem} "
                f"({self.entries} entries checked); restore the audit_entries table from backup "
                "and compare it with this database from that entry on")


def canonical(value) -> str:
    """The JSON the hashes are computed over: sorted keys, no spaces, dates as ISO text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_default)


def _json_default(value):
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable in an audit payload")


def _plain_date(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, (date, datetime)):
        return date(value.year, value.month, value.day).isoformat()
    return str(value)[:10]


def entry_hash(prev_hash: str, seq: int, key: str, kind: str, account_id: str,
               cycle_date, run_id: str, task_id: str, try_number: int, payload_json: str,
               recorded_at: str) -> str:
    body = canonical({
        "seq": int(seq), "key": key, "kind": kind, "account_id": account_id,
        "cycle_date": _plain_date(cycle_date), "run_id": run_id, "task_id": task_id,
        "try_number": int(try_number), "payload": payload_json, "recorded_at": recorded_at,
    })
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


_LOCK_HEAD = text("UPDATE audit_chain_head SET last_seq = last_seq WHERE id = 1")
_READ_HEAD = text("SELECT last_seq, last_hash FROM audit_chain_head WHERE id = 1")
_INSERT = text(
    "INSERT INTO audit_entries (seq, entry_key, kind, account_id, cycle_date, run_id, task_id,"
    " try_number, payload, recorded_at, prev_hash, entry_hash) VALUES (:seq, :entry_key, :kind,"
    " :account_id, :cycle_date, :run_id, :task_id, :try_number, :payload, :recorded_at,"
    " :prev_hash, :entry_hash)")
_MOVE_HEAD = text("UPDATE audit_chain_head SET last_seq = :seq, last_hash = :h WHERE id = 1")


def _existing_keys(conn: Connection, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        params = {f"k{i}": k for i, k in enumerate(chunk)}
        marks = ", ".join(f":k{i}" for i in range(len(chunk)))
        found.update(r[0] for r in conn.execute(
            text(f"SELECT entry_key FROM audit_entries WHERE entry_key IN ({marks})"), params))
    return found


def append_entries(conn: Connection, entries: Iterable[Entry]) -> int:
    """Append the entries whose keys are new, in the given order; returns how many were added.

    Call inside a transaction (``engine.begin()``) with nothing written before it on ``conn``:
    the head lock is taken here and held until that transaction commits.
    """
    entries = list(entries)
    conn.execute(_LOCK_HEAD)
    seq, prev = conn.execute(_READ_HEAD).one()
    seen = _existing_keys(conn, [e.key for e in entries])
    recorded_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = []
    for e in entries:
        if e.key in seen:
            continue
        if e.kind not in KINDS:
            raise ValueError(f"audit entry kind {e.kind!r} is not one of {', '.join(KINDS)}")
        seen.add(e.key)
        seq += 1
        payload = canonical(e.payload)
        cycle_date = _plain_date(e.cycle_date)
        h = entry_hash(prev, seq, e.key, e.kind, e.account_id, cycle_date, e.run_id, e.task_id,
                       e.try_number, payload, recorded_at)
        rows.append({"seq": seq, "entry_key": e.key, "kind": e.kind, "account_id": e.account_id,
                     "cycle_date": date.fromisoformat(cycle_date) if cycle_date else None,
                     "run_id": e.run_id, "task_id": e.task_id, "try_number": int(e.try_number),
                     "payload": payload, "recorded_at": recorded_at, "prev_hash": prev,
                     "entry_hash": h})
        prev = h
    if rows:
        for start in range(0, len(rows), 1000):
            conn.execute(_INSERT, rows[start:start + 1000])
        conn.execute(_MOVE_HEAD, {"seq": seq, "h": prev})
    return len(rows)


def append(conn: Connection, *, kind: str, key: str, payload: dict, account_id: str = "",
           cycle_date: date | None = None, run_id: str = "", task_id: str = "",
           try_number: int = 0) -> bool:
    """Append one entry (see :func:`append_entries`); False when its key was already recorded."""
    return append_entries(conn, [Entry(key=key, kind=kind, payload=payload, account_id=account_id,
                                       cycle_date=cycle_date, run_id=run_id, task_id=task_id,
                                       try_number=try_number)]) == 1


def record(engine: Engine, entries: Iterable[Entry]) -> int:
    """Append in a transaction of its own."""
    with engine.begin() as conn:
        return append_entries(conn, entries)


_COLUMNS = ("seq, entry_key, kind, account_id, cycle_date, run_id, task_id, try_number, payload,"
            " recorded_at, prev_hash, entry_hash")


def _recorded(row) -> Recorded:
    (seq, key, kind, account, day, run_id, task_id, try_number, payload, at, prev, h) = row
    day = date.fromisoformat(_plain_date(day)) if day is not None else None
    return Recorded(int(seq), key, kind, account, day, run_id, task_id, int(try_number),
                    json.loads(payload), at, prev, h)


def entries(conn: Connection, *, account_id: str | None = None, cycle_date: date | None = None,
            kind: str | None = None) -> list[Recorded]:
    """Entries in chain order, optionally for one account, cycle date or kind."""
    where, params = [], {}
    if account_id is not None:
        where.append("account_id = :a")
        params["a"] = account_id
    if cycle_date is not None:
        where.append("cycle_date = :d")
        params["d"] = date(cycle_date.year, cycle_date.month, cycle_date.day)
    if kind is not None:
        where.append("kind = :k")
        params["k"] = kind
    sql = f"SELECT {_COLUMNS} FROM audit_entries"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return [_recorded(r) for r in conn.execute(text(sql + " ORDER BY seq"), params)]


def _raw_chain(conn: Connection, after_seq: int = 0, batch: int = 5000) -> Iterator[tuple]:
    last = after_seq
    while True:
        rows = conn.execute(text(f"SELECT {_COLUMNS} FROM audit_entries WHERE seq > :s"
                                 f" ORDER BY seq LIMIT {batch}"), {"s": last}).all()
        if not rows:
            return
        yield from rows
        last = rows[-1][0]


def head(conn: Connection) -> tuple[int, str]:
    seq, h = conn.execute(_READ_HEAD).one()
    return int(seq), h


def verify(conn: Connection, *, after_seq: int = 0, after_hash: str = GENESIS) -> Verification:
    """Walk the chain from the start, or from a verified checkpoint (``after_seq`` whose hash
    is ``after_hash``: only the entries after it are read); the first entry whose link does
    not hold is reported. ``entries`` counts the entries read."""
    prev, expected_seq, count = after_hash, after_seq + 1, 0
    for (seq, key, kind, account, day, run_id, task_id, try_number, payload, at, prev_hash,
         stored) in _raw_chain(conn, after_seq):
        count += 1
        if int(seq) != expected_seq:
            return Verification(False, count, expected_seq,
                                f"entry #{expected_seq} is missing (next is #{seq})")
        if prev_hash != prev:
            return Verification(False, count, int(seq),
                                "its previous-hash does not match the entry before it "
                                "(an earlier entry was changed or removed)")
        actual = entry_hash(prev_hash, seq, key, kind, account, day, run_id, task_id,
                            try_number, payload, at)
        if actual != stored:
            return Verification(False, count, int(seq),
                                f"its content does not match its hash (key {key})")
        prev, expected_seq = stored, expected_seq + 1
    head_seq, head_hash = head(conn)
    if head_seq != expected_seq - 1 or head_hash != prev:
        return Verification(False, count, expected_seq,
                            f"the chain ends at #{expected_seq - 1} but its head names "
                            f"#{head_seq} (entries were cut off the end)", head_seq)
    return Verification(True, count, head_seq=head_seq)
