"""The cycle's disconnection step for cycle date D, after the decisions of D:

lapse the notices CONTRACT §2 ends (the account paid, fell below the disconnection minimum, left
escalation, or the notice outlived ``notice_valid_days`` after its earliest date without an
order), note the lapses D's messages tell the customer of, record D's proposed orders, and write
``disconnection/`` notices, proposals and lapsed notices.

A notice is not served here: a decision only asks for it. It is served when the message carrying
it is delivered or staff serve it in person (arrears.records.service), and ``notices.csv`` is
written again after every dispatch.

A replay (backfill without allow_contact, a dry run) lapses and records nothing: it writes its
files under ``<outbox>/<D>/replays/<run id>/`` from what the normal runs recorded and what its
own decisions propose.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Connection, Engine, text

from arrears.db.values import as_date
from arrears.cycle.run import CycleRun
from arrears.db import sql
from arrears.policy.business_days import BusinessCalendar
from arrears.policy.config import Policy
from arrears.records.decided import Decided
from arrears.records.service import NOTICE_COLUMNS, notice_id_for, write_served_notices  # noqa: F401
from arrears.outbox_files import run_folder, write_file
from arrears.spreadsheet import csv_bytes

log = logging.getLogger(__name__)

PROPOSAL_COLUMNS = ("account_id", "notice_id")
CANCELLED_COLUMNS = ("account_id", "notice_id", "served_on", "closed_on", "closed_reason")

_LOG_INSERT = text(
    "INSERT INTO disconnection_log (event_id, event, cycle_date, account_id, notice_id, detail,"
    " run_id, task_id, try_number) VALUES (:event_id, :event, :cycle_date, :account_id,"
    " :notice_id, :detail, :run_id, :task_id, :try_number) ON CONFLICT (event_id) DO NOTHING")


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


def _cancel(conn: Connection, run: CycleRun, policy: Policy) -> int:
    d = run.cycle_date
    rows = conn.execute(sql("disconnection/notices_to_cancel.sql", conn.dialect.name),
                        {"d": d, "minimum": policy.disconnection_min_outstanding_fen,
                         "expired_on_or_before": d - timedelta(days=policy.notice_valid_days)}).all()
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
    decided = Decided.of(run)  # a replay proposes from its own decisions and records nothing
    rows = conn.execute(decided.sql("disconnection/proposals.sql", conn.dialect.name),
                        decided.params()).all()
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
                       outbox) -> CycleOutcome:
    """Serve, cancel, note what was told, propose; then write D's disconnection files in the
    run's folder of the outbox (a replay's apart)."""
    out = CycleOutcome(replay=run.replay)
    d = run.cycle_date
    with engine.begin() as conn:
        if not run.replay:
            out.cancelled = _cancel(conn, run, policy)
            out.told = _told(conn, run)
        proposals = _propose(conn, run, record=not run.replay)
        out.served = conn.execute(text(
            "SELECT COUNT(*) FROM disconnection_notices WHERE served_on = :d"), {"d": d}).scalar_one()
        cancelled = conn.execute(text(
            "SELECT account_id, notice_id, served_on, closed_on, closed_reason"
            " FROM disconnection_notices WHERE closed_on = :d AND closed_reason <> 'order_released'"),
            {"d": d}).all()
    out.proposed = len(proposals)
    out.proposed_fen = sum(r[2] for r in proposals)
    run_files = run_folder(outbox, run)
    folder = run_files / "disconnection"
    key = lambda r: (r[0], r[1])  # noqa: E731 - byte order, whatever the database's collation
    files = [
        write_served_notices(engine, outbox, d, folder=run_files),
        write_file(folder / "proposed_orders.csv", csv_bytes(PROPOSAL_COLUMNS, (
            (a, n) for a, n, *_ in sorted(proposals, key=key)))),
        write_file(folder / "cancelled_notices.csv", csv_bytes(CANCELLED_COLUMNS, (
            (a, n, as_date(s), as_date(c), r) for a, n, s, c, r in sorted(cancelled, key=key)))),
    ]
    out.files = tuple(str(f) for f in files)
    log.info("disconnection for %s: served %d, cancelled %d, told %d, proposed %d%s", d,
             out.served, out.cancelled, out.told, out.proposed,
             " (replay: nothing served, cancelled or recorded)" if run.replay else "")
    return out
