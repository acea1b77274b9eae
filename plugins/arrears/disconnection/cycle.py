"""The cycle's disconnection step for cycle date D, after the decisions of D:

serve the notices D decided, cancel the notices of accounts that paid (gone from the extract or
below the disconnection minimum), note the cancellations D's messages tell the customer of,
record D's proposed orders, and write ``disconnection/`` notices, proposals and cancellations.

A replay (backfill without allow_contact) serves, cancels and proposes nothing: it only rewrites
the files from what the normal runs recorded and what its own decisions propose.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from arrears.cycle.decide import as_date
from arrears.cycle.outputs import cycle_folder, write_atomic
from arrears.cycle.run import CycleRun
from arrears.db import sql
from arrears.policy.business_days import BusinessCalendar
from arrears.policy.config import Policy
from arrears.spreadsheet import csv_bytes

log = logging.getLogger(__name__)

NOTICE_COLUMNS = ("account_id", "notice_id", "served_on", "earliest_disconnection")
PROPOSAL_COLUMNS = ("account_id", "notice_id")
CANCELLED_COLUMNS = ("account_id", "notice_id", "served_on", "closed_on", "closed_reason")

_LOG_INSERT = text(
    "INSERT INTO disconnection_log (event_id, event, cycle_date, account_id, notice_id, detail,"
    " run_id, task_id, try_number) VALUES (:event_id, :event, :cycle_date, :account_id,"
    " :notice_id, :detail, :run_id, :task_id, :try_number) ON CONFLICT (event_id) DO NOTHING")


def notice_id_for(account_id: str, served_on: date) -> str:
    """Deterministic: one notice per account per service date, whatever the retries."""
    return f"DN-{served_on:%Y%m%d}-{account_id}"


def log_event(conn: Connection, run: CycleRun, event: str, cycle_date: date, account_id: str,
              notice_id: str, detail: str = "", key: str | None = None) -> None:
    conn.execute(_LOG_INSERT, {
        "event_id": key or f"{event}:{notice_id}", "event": event, "cycle_date": cycle_date,
        "account_id": account_id, "notice_id": notice_id, "detail": detail, "run_id": run.run_id,
        "task_id": run.task_id, "try_number": run.try_number})


@dataclass
class CycleOutcome:
    served: int = 0
    cancelled: int = 0
    told: int = 0
    proposed: int = 0
    proposed_fen: int = 0
    replay: bool = False
    files: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"served": self.served, "cancelled": self.cancelled, "told": self.told,
                "proposed": self.proposed, "proposed_fen": self.proposed_fen,
                "replay": self.replay, "files": list(self.files)}


def _serve(conn: Connection, run: CycleRun, policy: Policy, calendar: BusinessCalendar) -> int:
    d = run.cycle_date
    earliest = calendar.earliest_disconnection(d, policy.disconnection_notice_days)
    accounts = [r[0] for r in conn.execute(text(
        "SELECT account_id FROM decisions WHERE cycle_date = :d AND replay = 0"
        " AND actions LIKE '%disconnection_notice%'"), {"d": d})]
    if not accounts:
        return 0
    ids = [(a, notice_id_for(a, d)) for a in accounts]
    conn.execute(sql("disconnection/serve_notices.sql", conn.dialect.name),
                 [{"notice_id": n, "account_id": a, "served_on": d, "earliest": earliest}
                  for a, n in ids])
    conn.execute(_LOG_INSERT, [
        {"event_id": f"notice_served:{n}", "event": "notice_served", "cycle_date": d,
         "account_id": a, "notice_id": n, "detail": f"earliest {earliest}", "run_id": run.run_id,
         "task_id": run.task_id, "try_number": run.try_number} for a, n in ids])
    return len(accounts)


def _cancel(conn: Connection, run: CycleRun, policy: Policy) -> int:
    d = run.cycle_date
    rows = conn.execute(sql("disconnection/notices_to_cancel.sql", conn.dialect.name),
                        {"d": d, "minimum": policy.disconnection_min_outstanding_fen}).all()
    for notice_id, account_id, reason in rows:
        conn.execute(text("UPDATE disconnection_notices SET closed_on = :d, closed_reason = :r"
                          " WHERE notice_id = :n AND closed_on IS NULL"),
                     {"d": d, "r": reason, "n": notice_id})
        log_event(conn, run, "notice_cancelled", d, account_id, notice_id, reason)
    return len(rows)


def _told(conn: Connection, run: CycleRun) -> int:
    d = run.cycle_date
    rows = conn.execute(sql("disconnection/cancellations_told.sql", conn.dialect.name),
                        {"d": d}).all()
    for notice_id, account_id in rows:
        log_event(conn, run, "cancellation_told", d, account_id, notice_id,
                  "in the consolidated message of the day")
    return len(rows)


def _propose(conn: Connection, run: CycleRun, record: bool) -> list:
    d = run.cycle_date
    rows = conn.execute(sql("disconnection/proposals.sql", conn.dialect.name), {"d": d}).all()
    if record:
        conn.execute(text("DELETE FROM disconnection_proposals WHERE cycle_date = :d"), {"d": d})
        if rows:
            conn.execute(text(
                "INSERT INTO disconnection_proposals (cycle_date, notice_id, account_id,"
                " outstanding_fen, earliest_disconnection, run_id, task_id, try_number)"
                " VALUES (:d, :n, :a, :o, :e, :run_id, :task_id, :try)"),
                [{"d": d, "n": n, "a": a, "o": o, "e": as_date(e), "run_id": run.run_id,
                  "task_id": run.task_id, "try": run.try_number} for a, n, o, e in rows])
    return rows


def disconnection_step(engine: Engine, run: CycleRun, policy: Policy, calendar: BusinessCalendar,
                       outbox: Path) -> CycleOutcome:
    """Serve, cancel, note what was told, propose; then write D's disconnection files."""
    out = CycleOutcome(replay=run.replay)
    d = run.cycle_date
    with engine.begin() as conn:
        if not run.replay:
            out.served = _serve(conn, run, policy, calendar)
            out.cancelled = _cancel(conn, run, policy)
            out.told = _told(conn, run)
        proposals = _propose(conn, run, record=not run.replay)
        notices = conn.execute(text(
            "SELECT account_id, notice_id, served_on, earliest_disconnection"
            " FROM disconnection_notices WHERE served_on = :d"), {"d": d}).all()
        cancelled = conn.execute(text(
            "SELECT account_id, notice_id, served_on, closed_on, closed_reason"
            " FROM disconnection_notices WHERE closed_on = :d AND closed_reason LIKE 'cancelled%'"),
            {"d": d}).all()
    out.proposed = len(proposals)
    out.proposed_fen = sum(r[2] for r in proposals)
    folder = cycle_folder(outbox, d) / "disconnection"
    key = lambda r: (r[0], r[1])  # noqa: E731 - byte order, whatever the database's collation
    files = [
        write_atomic(folder / "notices.csv", csv_bytes(NOTICE_COLUMNS, (
            (a, n, as_date(s), as_date(e)) for a, n, s, e in sorted(notices, key=key)))),
        write_atomic(folder / "proposed_orders.csv", csv_bytes(PROPOSAL_COLUMNS, (
            (a, n) for a, n, *_ in sorted(proposals, key=key)))),
        write_atomic(folder / "cancelled_notices.csv", csv_bytes(CANCELLED_COLUMNS, (
            (a, n, as_date(s), as_date(c), r) for a, n, s, c, r in sorted(cancelled, key=key)))),
    ]
    out.files = tuple(str(f) for f in files)
    log.info("disconnection for %s: served %d, cancelled %d, told %d, proposed %d%s", d,
             out.served, out.cancelled, out.told, out.proposed,
             " (replay: nothing served, cancelled or recorded)" if run.replay else "")
    return out
