"""Releasing a supervisor-approved batch of proposed orders as work orders, exactly once.

On approval every proposal is checked again against the latest data (a payment, a dispute or a
protection may have arrived since the cycle proposed it) with the same pure policy that proposed
it; the daily cap, the kill switch and dry-run are applied; the orders and the closing of their
notices are written in one transaction keyed by notice (one order per notice, ever); then
``disconnection/work_orders.csv`` of the batch is rewritten from the database.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Connection, Engine, text

from arrears.db.values import as_date, split_list
from arrears.cycle.run import CycleRun
from arrears.db import sql
from arrears.disconnection.cycle import log_event
from arrears.model import Account, CaseEvent, History, Notice, OpenBill
from arrears.money import format_fen
from arrears.policy import decide_account
from arrears.policy.business_days import BusinessCalendar
from arrears.policy.config import Policy
from arrears.outbox_files import day_folder, write_file
from arrears.spreadsheet import csv_bytes

log = logging.getLogger(__name__)

WORK_ORDER_COLUMNS = ("account_id", "notice_id", "order_id", "released_on", "approved_by")


@dataclass(frozen=True)
class Safety:
    """The interlocks: the kill switch stops every release; dry-run writes nothing but a preview."""
    kill_switch: bool = False
    dry_run: bool = False


@dataclass(frozen=True)
class Proposal:
    account_id: str
    notice_id: str
    outstanding_fen: int
    earliest_disconnection: date


@dataclass(frozen=True)
class Check:
    proposal: Proposal
    eligible: bool
    reason: str
    cancel_reason: str | None = None    # the payment cancelled the notice


@dataclass
class ReleaseOutcome:
    status: str                          # released | dry_run | kill_switch | nothing_to_release
    released: list[str] = field(default_factory=list)        # order ids
    withheld: dict[str, str] = field(default_factory=dict)   # notice id -> reason
    cancelled: dict[str, str] = field(default_factory=dict)  # notice id -> reason
    file: str = ""

    def as_dict(self) -> dict:
        return {"status": self.status, "released": len(self.released),
                "withheld": self.withheld, "cancelled": self.cancelled, "file": self.file}


def approval_id_for(batch_date: date, run_id: str) -> str:
    return f"{batch_date}/{run_id}"


def order_id_for(notice_id: str) -> str:
    """Deterministic: one work order per notice."""
    return "WO-" + notice_id.removeprefix("DN-")


def open_batch(engine: Engine, batch_date: date) -> list[Proposal]:
    """The batch's proposals that have no work order yet, oldest notice first."""
    with engine.connect() as conn:
        rows = conn.execute(sql("disconnection/open_proposals.sql", engine.dialect.name),
                            {"d": batch_date}).all()
    return sorted((Proposal(a, n, o, as_date(e)) for a, n, o, e in rows),
                  key=lambda p: (p.earliest_disconnection, p.account_id))


def batch_summary(batch_date: date, proposals: list[Proposal]) -> dict:
    """What the supervisor sees: count, amount and the list (a Markdown table for the UI)."""
    total = sum(p.outstanding_fen for p in proposals)
    lines = [f"**{len(proposals)}** proposed disconnection orders from the cycle of "
             f"**{batch_date}**, outstanding **CNY {format_fen(total)}** in total.", "",
             "Approve to release them as work orders (each is checked again first: a payment, "
             "dispute or protection since the proposal withholds it). Reject, or no answer by the "
             "deadline, releases nothing.", "",
             "| account | notice | outstanding (CNY) | earliest disconnection |",
             "|---|---|---:|---|"]
    lines += [f"| {p.account_id} | {p.notice_id} | {format_fen(p.outstanding_fen)} | "
              f"{p.earliest_disconnection} |" for p in proposals]
    return {"cycle_date": batch_date.isoformat(), "count": len(proposals),
            "amount": format_fen(total), "body": "\n".join(lines),
            "subject": f"Approve {len(proposals)} disconnection orders of {batch_date} "
                       f"(CNY {format_fen(total)})",
            "proposals": [{"account_id": p.account_id, "notice_id": p.notice_id,
                           "outstanding": format_fen(p.outstanding_fen)} for p in proposals]}


def recheck(conn: Connection, proposal: Proposal, batch_date: date, release_date: date,
            policy: Policy, calendar: BusinessCalendar) -> Check:
    """Is the account still eligible on the release date, by the latest data we hold?"""
    dialect = conn.dialect.name
    a, r = proposal.account_id, release_date
    notice_row = conn.execute(text(
        "SELECT served_on, earliest_disconnection, closed_on, closed_reason"
        " FROM disconnection_notices WHERE notice_id = :n"), {"n": proposal.notice_id}).first()
    if notice_row is None:
        return Check(proposal, False, "notice_missing")
    if notice_row[2] is not None:
        return Check(proposal, False, f"notice_closed:{notice_row[3]}")
    staged = as_date(conn.execute(sql("disconnection/recheck_latest_staged.sql", dialect),
                                  {"batch": batch_date, "r": r}).scalar())
    if staged is None:
        return Check(proposal, False, "no_staged_extract")
    # Deliveries newer than the staged data: gone from the extract = paid; a payment = wait.
    for day, present, payments in conn.execute(
            sql("disconnection/recheck_newer_deliveries.sql", dialect), {"a": a, "s": staged, "r": r}):
        if not present:
            return Check(proposal, False, f"not_in_extract_of_{as_date(day)}", "notice_lapsed:paid_in_full")
        if payments:
            return Check(proposal, False, f"payment_received_{as_date(day)}_not_yet_staged")
    row = conn.execute(sql("disconnection/recheck_account.sql", dialect), {"s": staged, "a": a}).first()
    if row is None:
        return Check(proposal, False, f"not_in_extract_of_{staged}", "notice_lapsed:paid_in_full")
    account = Account(*row[:7], protections=split_list(row[7]), opt_out=split_list(row[8]))
    bills = [OpenBill(b[0], b[1], as_date(b[2]), b[3]) for b in conn.execute(
        sql("disconnection/recheck_bills.sql", dialect), {"s": staged, "a": a})]
    events = [CaseEvent(e[0], e[1], as_date(e[2]), e[3], as_date(e[4])) for e in conn.execute(
        sql("disconnection/recheck_events.sql", dialect), {"a": a, "r": r})]
    notice = Notice(proposal.notice_id, as_date(notice_row[0]), as_date(notice_row[1]))
    # The proposal was made in the spell the notice was served in; decide_account() then checks that
    # the account is still in escalation.
    spell = History(pending_notice=notice, previous_stage="escalation",
                    stage_entered_on=notice.served_on)
    decision = decide_account(account, bills, events, spell, release_date,
                      policy, lambda d: calendar.earliest_disconnection(d, policy.disconnection_notice_days))
    if "disconnection_order" in decision.actions:
        return Check(proposal, True, "eligible")
    why = next((x for x in decision.reasons if x.startswith(("disconnection", "escalation_stopped",
                                                             "no_action"))), decision.stage)
    paid = decision.outstanding_fen < policy.disconnection_min_outstanding_fen
    return Check(proposal, False, f"no_longer_eligible:{why}",
                 "notice_lapsed:below_minimum" if paid else None)


def _released_on(conn: Connection, day: date) -> int:
    return conn.execute(text("SELECT COUNT(*) FROM disconnection_orders WHERE released_on = :r"),
                        {"r": day}).scalar_one()


def _insert_approval(conn: Connection, approval_id: str, batch_date: date, outcome: str,
                     responded_by: str, responded_at: str, proposals: list[Proposal],
                     run: CycleRun) -> None:
    conn.execute(text(
        "INSERT INTO disconnection_approvals (approval_id, cycle_date, outcome, responded_by,"
        " responded_at, proposals, amount_fen, run_id, task_id, try_number) VALUES (:i, :d, :o,"
        " :by, :at, :n, :amt, :run_id, :task_id, :try) ON CONFLICT (approval_id) DO NOTHING"),
        {"i": approval_id, "d": batch_date, "o": outcome, "by": responded_by, "at": responded_at,
         "n": len(proposals), "amt": sum(p.outstanding_fen for p in proposals),
         "run_id": run.run_id, "task_id": run.task_id, "try": run.try_number})


def record_answer(engine: Engine, batch_date: date, run: CycleRun, outcome: str,
                  responded_by: str, responded_at: str) -> str:
    """Record a supervisor's answer (approved, rejected, timed_out) once per release run."""
    approval_id = approval_id_for(batch_date, run.run_id)
    with engine.begin() as conn:
        _insert_approval(conn, approval_id, batch_date, outcome, responded_by, responded_at,
                         open_batch(engine, batch_date) if outcome != "approved" else [], run)
    return approval_id


def write_work_orders(engine: Engine, outbox, batch_date: date):
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT account_id, notice_id, order_id, released_on, approved_by"
            " FROM disconnection_orders WHERE cycle_date = :d"), {"d": batch_date}).all()
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    body = csv_bytes(WORK_ORDER_COLUMNS, ((a, n, o, as_date(r), by) for a, n, o, r, by in rows))
    return write_file(day_folder(outbox, batch_date) / "disconnection" / "work_orders.csv", body)


def release_batch(engine: Engine, *, batch_date: date, release_date: date, approved_by: str,
                  responded_at: str, run: CycleRun, policy: Policy, calendar: BusinessCalendar,
                  safety: Safety, outbox) -> ReleaseOutcome:
    """Release the approved batch of ``batch_date`` on ``release_date``; safe to call again."""
    if not approved_by:
        raise ValueError("a work order needs a named approver: the approval has no responder")
    approval_id = approval_id_for(batch_date, run.run_id)
    proposals = open_batch(engine, batch_date)
    if safety.kill_switch:
        with engine.begin() as conn:
            _insert_approval(conn, approval_id, batch_date, "approved", approved_by, responded_at,
                             proposals, run)
        log.warning("kill switch is on: released none of %d orders of %s", len(proposals), batch_date)
        return ReleaseOutcome("kill_switch", withheld={p.notice_id: "kill_switch" for p in proposals})

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(4244)"))  # one release at a time
        if not safety.dry_run:
            # Written first: on SQLite this takes the write lock before the cap is counted.
            _insert_approval(conn, approval_id, batch_date, "approved", approved_by, responded_at,
                             proposals, run)
        checks = [recheck(conn, p, batch_date, release_date, policy, calendar) for p in proposals]
        room = max(policy.disconnection_daily_cap - _released_on(conn, release_date), 0)
        eligible = [c.proposal for c in checks if c.eligible]
        out = ReleaseOutcome("dry_run" if safety.dry_run else "released")
        out.withheld = {c.proposal.notice_id: c.reason for c in checks if not c.eligible}
        out.cancelled = {c.proposal.notice_id: c.cancel_reason for c in checks if c.cancel_reason}
        for p in eligible[room:]:
            out.withheld[p.notice_id] = f"daily_cap_{policy.disconnection_daily_cap}"
        release = eligible[:room]
        rows = [{"order_id": order_id_for(p.notice_id), "notice_id": p.notice_id,
                 "account_id": p.account_id, "cycle_date": batch_date, "released_on": release_date,
                 "approved_by": approved_by, "approval_id": approval_id, "run_id": run.run_id,
                 "task_id": run.task_id, "try_number": run.try_number} for p in release]
        out.released = [r["order_id"] for r in rows]
        if safety.dry_run:  # nothing was written in this transaction
            preview = csv_bytes(WORK_ORDER_COLUMNS, sorted(
                (r["account_id"], r["notice_id"], r["order_id"], release_date, approved_by)
                for r in rows))
            path = day_folder(outbox, batch_date) / "disconnection" / "work_orders.dry_run.csv"
            out.file = str(write_file(path, preview))
            log.info("dry run: would release %d orders of %s, withhold %d", len(rows), batch_date,
                     len(out.withheld))
            return out
        if rows:
            conn.execute(text(
                "INSERT INTO disconnection_orders (order_id, notice_id, account_id, cycle_date,"
                " released_on, approved_by, approval_id, run_id, task_id, try_number) VALUES"
                " (:order_id, :notice_id, :account_id, :cycle_date, :released_on, :approved_by,"
                " :approval_id, :run_id, :task_id, :try_number)"
                " ON CONFLICT (notice_id) DO NOTHING"), rows)
        for r in rows:
            conn.execute(text("UPDATE disconnection_notices SET closed_on = :d,"
                              " closed_reason = 'order_released' WHERE notice_id = :n"
                              " AND closed_on IS NULL"), {"d": release_date, "n": r["notice_id"]})
            log_event(conn, run, "order_released", batch_date, r["account_id"], r["notice_id"],
                      f"{r['order_id']} approved by {approved_by}")
        by_id = {p.notice_id: p for p in proposals}
        for notice_id, reason in out.withheld.items():
            log_event(conn, run, "order_withheld", batch_date, by_id[notice_id].account_id,
                      notice_id, reason, key=f"order_withheld:{notice_id}:{run.run_id}")
        for notice_id, reason in out.cancelled.items():
            conn.execute(text("UPDATE disconnection_notices SET closed_on = :d, closed_reason = :r"
                              " WHERE notice_id = :n AND closed_on IS NULL"),
                         {"d": release_date, "r": reason, "n": notice_id})
            log_event(conn, run, "notice_cancelled", batch_date, by_id[notice_id].account_id,
                      notice_id, reason)
    out.file = str(write_work_orders(engine, outbox, batch_date))
    log.info("released %d orders of %s approved by %s; withheld %d (%s)", len(out.released),
             batch_date, approved_by, len(out.withheld),
             ", ".join(sorted(set(out.withheld.values()))) or "none")
    return out
