"""The cycle's files in the run's folder (``<outbox>/<D>/``, a replay's under ``replays/``; see
arrears.outbox_files): decisions.csv and cycle_summary.json (CONTRACT §3).

Every file is written whole (arrears.outbox_files.write_file), so a crash never leaves a half
file that looks complete, and the same state always gives the same bytes.
"""
from __future__ import annotations

import json
from datetime import date

from airflow.sdk import ObjectStoragePath
from sqlalchemy import Engine, text

from arrears.db.sqlfiles import sql
from arrears.model import ACTIONS, HOLDS, SEGMENTS, STAGES
from arrears.money import format_fen
from arrears.outbox_files import as_storage_path, write_file
from arrears.records.decided import Decided
from arrears.spreadsheet import csv_bytes

# The contract's columns, then the further ones (CONTRACT §3): segment first (§6).
DECISION_COLUMNS = ("account_id", "stage", "dpd", "outstanding", "late_fee", "actions", "holds",
                    "segment")


def write_decisions_csv(engine: Engine, folder, cycle_date: date,
                        decided: Decided | None = None) -> ObjectStoragePath:
    """``<folder>/decisions.csv``: D's decisions, the run's folder being ``folder``
    (``decided``: whose decisions, the real ones unless a replay's)."""
    decided = decided or Decided(cycle_date)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT account_id, stage, dpd, outstanding_fen, late_fee_fen, actions, holds, segment,"
            f" arm FROM {decided.table('decisions')} d WHERE cycle_date = :d"), decided.params()).all()
    rows.sort(key=lambda r: r[0])  # byte order, whatever the database's collation
    # `arm` (CONTRACT §5) only on the days an experiment ran, so other days' files keep their shape.
    arm = ("arm",) if any(r[8] for r in rows) else ()
    body = csv_bytes(DECISION_COLUMNS + arm, (
        (a, s, dpd, format_fen(o), format_fen(f), acts, holds, seg, *([r] if arm else []))
        for a, s, dpd, o, f, acts, holds, seg, r in rows))
    return write_file(as_storage_path(folder) / "decisions.csv", body)


def decision_counts(engine: Engine, cycle_date: date, decided: Decided | None = None) -> dict:
    """Counts and amounts by stage, action, hold and segment for D's decisions (of this run)."""
    decided = decided or Decided(cycle_date)
    by_stage = {s: 0 for s in STAGES}
    amount_by_stage = {s: 0 for s in STAGES}
    by_action = {a: 0 for a in ACTIONS}
    by_hold = {h: 0 for h in HOLDS}
    by_segment = {s: 0 for s in SEGMENTS}
    replay = False
    with engine.connect() as conn:
        for stage, outstanding, actions, holds, is_replay, segment in conn.execute(text(
                "SELECT stage, outstanding_fen, actions, holds, replay, segment"
                f" FROM {decided.table('decisions')} d WHERE cycle_date = :d"), decided.params()):
            by_stage[stage] += 1
            by_segment[segment] = by_segment.get(segment, 0) + 1
            amount_by_stage[stage] += outstanding
            replay = replay or bool(is_replay)
            for a in filter(None, actions.split(";")):
                by_action[a] += 1
            for h in filter(None, holds.split(";")):
                by_hold[h] += 1
        quarantined = conn.execute(text("SELECT COUNT(*) FROM quarantine WHERE cycle_date = :d"),
                                   {"d": cycle_date}).scalar_one()
    return {
        "accounts": sum(by_stage.values()),
        "quarantined": quarantined,
        "by_stage": by_stage,
        "outstanding_by_stage": {s: format_fen(v) for s, v in amount_by_stage.items()},
        "by_action": by_action,
        "by_hold": by_hold,
        "by_segment": by_segment,
        "replay": replay,
    }


def write_summary(folder, cycle_date: date, summary: dict) -> ObjectStoragePath:
    body = json.dumps({"cycle_date": cycle_date.isoformat(), **summary}, ensure_ascii=False,
                      indent=2, sort_keys=True) + "\n"
    return write_file(as_storage_path(folder) / "cycle_summary.json", body.encode("utf-8"))


DIFFERENCE_COLUMNS = ("action", "change", "account_id")


def write_differences(engine: Engine, folder, decided: Decided) -> dict | None:
    """A replay of a date that ran for real, against the real decisions of D: per action, how
    many accounts the replay adds and removes (cycle_summary.json's ``differences``), and who,
    in ``differences.csv`` in the replay's ``folder``. None when D has no real decisions to
    compare with."""
    with engine.connect() as conn:
        ran = conn.execute(text("SELECT 1 FROM decisions WHERE cycle_date = :d LIMIT 1"),
                           decided.params()).first()
        if ran is None:
            return None
        rows = conn.execute(sql("records/replay_differences.sql", conn.dialect.name),
                            decided.params()).all()
    rows.sort(key=lambda r: (ACTIONS.index(r[0]) if r[0] in ACTIONS else len(ACTIONS), r[0],
                             r[1], r[2].encode()))
    counts = {a: {"added": 0, "removed": 0} for a in ACTIONS}
    for action, change, _ in rows:
        counts.setdefault(action, {"added": 0, "removed": 0})[change] += 1
    write_file(as_storage_path(folder) / "differences.csv", csv_bytes(DIFFERENCE_COLUMNS, rows))
    return {"against": "the real decisions of this date", "file": "differences.csv",
            "by_action": counts,
            "accounts_changed": len({account for _, _, account in rows})}
