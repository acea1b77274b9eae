"""Audit chain checkpoints: verify each day only what was appended since the last verified entry.

A checkpoint is (seq, hash) of the last entry a verification found intact. It is stored in
``audit_checkpoints`` and, outside the database, in the day's outbox as
``<outbox>/<D>/audit_checkpoints/<seq>.json`` (the folder the utility already archives and
hands over; one file per checkpoint, as a re-run day can checkpoint twice). The daily verification then

1. reads the latest checkpoint and its anchor file: they must agree (someone who rewrote the
   chain and the checkpoint table together still cannot make the file they never touched agree);
2. checks that the checkpointed entry still has the checkpointed hash (one row);
3. walks only the entries after it, starting from the checkpointed hash, and the head.

So its cost is the day's entries, not the years behind them. What it cannot see is an edit
*before* the checkpoint that leaves the stored hashes alone (the row's content no longer matches
its own hash): that is what ``arrears audit verify --full`` (the whole chain, plus every
checkpoint against its entry and its anchor) is for; run it on a schedule that suits the
auditors, e.g. monthly. Without a checkpoint, or when the anchor file is gone, the daily
verification falls back to the full one and says why.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timezone

from sqlalchemy import Connection, text

from arrears.audit import trail
from arrears.outbox_files import as_storage_path, day_folder, write_file

ANCHOR_FOLDER = "audit_checkpoints"


def anchor_path(outbox_root, cycle_date: date, seq: int):
    return day_folder(outbox_root, cycle_date) / ANCHOR_FOLDER / f"{seq}.json"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    entry_hash: str
    cycle_date: date
    anchor: str


@dataclass(frozen=True)
class Check:
    """A verification and how it was done: ``mode`` is ``checkpoint`` or ``full``."""
    result: trail.Verification
    mode: str
    since: Checkpoint | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.result.ok

    def describe(self) -> str:
        if self.mode == "checkpoint" and self.since is not None:
            how = (f"from checkpoint #{self.since.seq} of {self.since.cycle_date} "
                   f"({self.result.entries} entries read since)")
        else:
            how = f"full verification ({self.result.entries} entries read)"
        if self.result.ok:
            text_ = f"audit chain intact: head #{self.result.head_seq}, {how}"
        else:
            text_ = (f"audit chain BROKEN at entry #{self.result.first_broken_seq}: "
                     f"{self.result.problem}; {how}. Restore audit_entries from backup and compare "
                     "it with this database from that entry on; run `arrears audit verify --full`")
        return text_ + (f" [{self.note}]" if self.note else "")


def latest(conn: Connection) -> Checkpoint | None:
    row = conn.execute(text("SELECT seq, entry_hash, cycle_date, anchor FROM audit_checkpoints"
                            " ORDER BY seq DESC LIMIT 1")).first()
    return _checkpoint(row) if row else None


def _checkpoint(row) -> Checkpoint:
    from arrears.db.values import as_date
    return Checkpoint(int(row[0]), row[1], as_date(row[2]), row[3])


def latest_before(conn: Connection, cycle_date: date) -> Checkpoint | None:
    """The newest checkpoint anchored on a day before ``cycle_date``."""
    row = conn.execute(text("SELECT seq, entry_hash, cycle_date, anchor FROM audit_checkpoints"
                            " WHERE cycle_date < :d ORDER BY seq DESC LIMIT 1"),
                       {"d": cycle_date}).first()
    return _checkpoint(row) if row else None


def read_anchor(location: str) -> dict | None:
    """The anchor file's content, or None when it is gone or unreadable."""
    try:
        path = as_storage_path(location)
        if not path.exists():
            return None
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return None


def _anchor_problem(cp: Checkpoint, anchor: dict) -> str:
    if anchor.get("seq") != cp.seq or anchor.get("entry_hash") != cp.entry_hash:
        return (f"checkpoint #{cp.seq} in the database does not match its anchor {cp.anchor} "
                f"(which names #{anchor.get('seq')} {str(anchor.get('entry_hash'))[:16]}…): the "
                "checkpoint table or the anchor was changed")
    return ""


def _stored_hash(conn: Connection, seq: int) -> str | None:
    return conn.execute(text("SELECT entry_hash FROM audit_entries WHERE seq = :s"),
                        {"s": seq}).scalar()


def verify_daily(conn: Connection) -> Check:
    """From the latest checkpoint (see the module's doc); the full chain when there is none."""
    cp = latest(conn)
    if cp is None:
        return Check(trail.verify(conn), "full", note="no checkpoint yet")
    anchor = read_anchor(cp.anchor)
    if anchor is None:
        return Check(trail.verify(conn), "full",
                     note=f"anchor {cp.anchor} of checkpoint #{cp.seq} is missing: verified in full")
    head_seq, _ = trail.head(conn)
    if problem := _anchor_problem(cp, anchor):
        return Check(trail.Verification(False, 0, cp.seq, problem, head_seq), "checkpoint", cp)
    if _stored_hash(conn, cp.seq) != cp.entry_hash:
        return Check(trail.Verification(False, 1, cp.seq,
                                        "the checkpointed entry's hash changed since it was "
                                        "verified (entries up to it were rewritten)", head_seq),
                     "checkpoint", cp)
    return Check(trail.verify(conn, after_seq=cp.seq, after_hash=cp.entry_hash), "checkpoint", cp)


def verify_full(conn: Connection) -> Check:
    """The whole chain from its first entry, then every checkpoint against its entry and its
    anchor file (a missing anchor is reported, not fatal: the chain itself verified)."""
    result = trail.verify(conn)
    if not result.ok:
        return Check(result, "full")
    missing = []
    for row in conn.execute(text("SELECT seq, entry_hash, cycle_date, anchor FROM audit_checkpoints"
                                 " ORDER BY seq")).all():
        cp = _checkpoint(row)
        if _stored_hash(conn, cp.seq) != cp.entry_hash:
            return Check(trail.Verification(False, result.entries, cp.seq,
                                            f"checkpoint #{cp.seq} names a hash the entry does not "
                                            "have: the checkpoint table was changed",
                                            result.head_seq), "full")
        anchor = read_anchor(cp.anchor)
        if anchor is None:
            missing.append(cp.seq)
        elif problem := _anchor_problem(cp, anchor):
            return Check(trail.Verification(False, result.entries, cp.seq, problem,
                                            result.head_seq), "full")
    note = f"anchors missing for checkpoints {missing[:5]}" if missing else ""
    return Check(result, "full", note=note)


def write(conn: Connection, outbox_root, cycle_date: date, check: Check) -> Checkpoint | None:
    """After a verification that held: anchor the head in ``<outbox>/<D>/`` and record it.
    The anchor file is written first, so a recorded checkpoint always has its anchor. Nothing
    is written when the head is already checkpointed (no entries since)."""
    if not check.ok:
        return None
    seq, h = trail.head(conn)
    if seq == 0 or seq != check.result.head_seq:
        return None
    if conn.execute(text("SELECT 1 FROM audit_checkpoints WHERE seq = :s"), {"s": seq}).first():
        return None
    path = anchor_path(outbox_root, cycle_date, seq)
    body = {"seq": seq, "entry_hash": h, "cycle_date": cycle_date.isoformat(),
            "verification": check.mode, "entries_read": check.result.entries}
    write_file(path, (json.dumps(body, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    conn.execute(text(
        "INSERT INTO audit_checkpoints (seq, entry_hash, cycle_date, anchor, entries_read,"
        " full_check, verified_at) VALUES (:s, :h, :d, :a, :n, :f, :at)"),
        {"s": seq, "h": h, "d": cycle_date, "a": str(path), "n": check.result.entries,
         "f": int(check.mode == "full"),
         "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return Checkpoint(seq, h, cycle_date, str(path))
