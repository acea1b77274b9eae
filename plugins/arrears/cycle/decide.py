"""Staging and decisions for one cycle date: set-based SQL for the bills, the pure policy per
account, streamed so memory stays flat whatever the extract's size."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import Connection, Engine, text

from arrears.cycle.grouping import AccountStream
from arrears.cycle.run import CycleRun
from arrears.db import sql
from arrears.model import Account, CaseEvent, Decision, History, Notice, OpenBill
from arrears.policy import decide
from arrears.policy.business_days import BusinessCalendar
from arrears.policy.config import Policy

log = logging.getLogger(__name__)
CHUNK = 5000


def as_date(value) -> date | None:
    """SQLite hands dates back as text, PostgreSQL as dates."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def split_list(value: str) -> frozenset[str]:
    return frozenset(i for i in (value or "").split(";") if i)


def stage_bills(engine: Engine, cycle_date: date) -> int:
    """Apply D's payments to D's bills (include/sql/cycle/stage_bills.sql); returns bill count."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM staged_bills WHERE cycle_date = :d"), {"d": cycle_date})
        conn.execute(sql("cycle/stage_bills.sql", engine.dialect.name), {"d": cycle_date})
        return conn.execute(text("SELECT COUNT(*) FROM staged_bills WHERE cycle_date = :d"),
                            {"d": cycle_date}).scalar_one()


def _history(rows: list, pending: list, cycle_date: date, policy: Policy) -> History:
    recent = cycle_date - timedelta(days=max(policy.contact_cap_days, policy.contact_repeat_days))
    messages, prenotices, letters, reports = [], [], [], []
    previous = None
    for _, day, stage, entered, actions in rows:
        day, acts = as_date(day), split_list(actions)
        previous = (stage, as_date(entered))
        if day >= recent:
            messages += [(day, ch) for ch in ("email", "sms") if ch in acts]
        if "credit_prenotice" in acts:
            prenotices.append(day)
        if "lawyer_letter" in acts:
            letters.append(day)
        if "credit_report" in acts:
            reports.append(day)
    notice = cancelled = released_on = None
    for _, notice_id, served, earliest, state, closed_on in pending:  # oldest first
        record = Notice(notice_id, as_date(served), as_date(earliest))
        if state == "pending":
            notice = record
        elif state == "cancelled":
            cancelled = record
        else:
            released_on = as_date(closed_on)
    return History(previous_stage=previous[0] if previous else None,
                   stage_entered_on=previous[1] if previous else None,
                   messages=tuple(messages), prenotices=tuple(prenotices),
                   lawyer_letters=tuple(letters), credit_reports=tuple(reports),
                   pending_notice=notice, cancelled_notice=cancelled,
                   order_released_on=released_on)


def iter_decisions(conn: Connection, cycle_date: date, policy: Policy,
                   calendar: BusinessCalendar) -> Iterator[Decision]:
    """Each account of D's extract decided from what was known as of D, in account order."""
    dialect = conn.dialect.name
    d = {"d": cycle_date}
    stream = conn.execution_options(stream_results=True, yield_per=CHUNK)
    recent = cycle_date - timedelta(days=max(policy.contact_cap_days, policy.contact_repeat_days))
    bills = AccountStream(stream.execute(sql("cycle/open_bills.sql", dialect), d))
    events = AccountStream(stream.execute(sql("cycle/case_events.sql", dialect), d))
    history = AccountStream(stream.execute(sql("cycle/history.sql", dialect), {**d, "recent": recent}))
    notices = AccountStream(stream.execute(sql("cycle/pending_notices.sql", dialect), d))

    def earliest(served: date) -> date:
        return calendar.earliest_disconnection(served, policy.disconnection_notice_days)

    for row in stream.execute(sql("cycle/accounts.sql", dialect), d):
        account = Account(*row[:7], protections=split_list(row[7]), opt_out=split_list(row[8]))
        aid = account.account_id
        open_bills = [OpenBill(b[1], b[2], as_date(b[3]), b[4]) for b in bills.take(aid)]
        case = [CaseEvent(e[1], e[2], as_date(e[3]), e[4], as_date(e[5])) for e in events.take(aid)]
        yield decide(account, open_bills, case, _history(history.take(aid), notices.take(aid),
                                                          cycle_date, policy),
                     cycle_date, policy, earliest)


@dataclass
class DecideResult:
    accounts: int = 0
    by_stage: dict[str, int] = field(default_factory=dict)


_DECISION_INSERT = text(
    "INSERT INTO decisions (cycle_date, account_id, stage, stage_entered_on, dpd, outstanding_fen,"
    " late_fee_fen, actions, holds, message_kinds, reasons, policy_version, replay, run_id)"
    " VALUES (:cycle_date, :account_id, :stage, :stage_entered_on, :dpd, :outstanding_fen,"
    " :late_fee_fen, :actions, :holds, :message_kinds, :reasons, :policy_version, :replay, :run_id)")
_BILL_INSERT = text(
    "INSERT INTO decision_bills (cycle_date, account_id, bill_id, days_overdue, late_fee_fen)"
    " VALUES (:cycle_date, :account_id, :bill_id, :days, :fee)")


def decide_cycle(engine: Engine, run: CycleRun, policy: Policy,
                 calendar: BusinessCalendar) -> DecideResult:
    """Replace D's decisions. A replay's rows are marked replay unless a normal run decided D."""
    result = DecideResult()
    d = {"d": run.cycle_date}
    with engine.connect() as reader, engine.begin() as writer:
        normal_exists = writer.execute(text(
            "SELECT COUNT(*) FROM decisions WHERE cycle_date = :d AND replay = 0"), d).scalar_one()
        replay = int(run.replay and not normal_exists)
        writer.execute(text("DELETE FROM decisions WHERE cycle_date = :d"), d)
        writer.execute(text("DELETE FROM decision_bills WHERE cycle_date = :d"), d)
        rows, bill_rows = [], []
        for decision in iter_decisions(reader, run.cycle_date, policy, calendar):
            result.accounts += 1
            result.by_stage[decision.stage] = result.by_stage.get(decision.stage, 0) + 1
            rows.append(decision_row(decision, replay, run.run_id))
            bill_rows += [{"cycle_date": run.cycle_date, "account_id": decision.account_id,
                           "bill_id": b, "days": days, "fee": fee}
                          for b, days, fee in decision.bill_fees]
            if len(rows) >= CHUNK:
                writer.execute(_DECISION_INSERT, rows)
                writer.execute(_BILL_INSERT, bill_rows)
                rows, bill_rows = [], []
                log.info("decided %d accounts", result.accounts)
        if rows:
            writer.execute(_DECISION_INSERT, rows)
        if bill_rows:
            writer.execute(_BILL_INSERT, bill_rows)
    return result


def decision_row(decision: Decision, replay: int, run_id: str) -> dict:
    return {
        "cycle_date": decision.cycle_date, "account_id": decision.account_id,
        "stage": decision.stage, "stage_entered_on": decision.stage_entered_on,
        "dpd": decision.dpd, "outstanding_fen": decision.outstanding_fen,
        "late_fee_fen": decision.late_fee_fen, "actions": ";".join(decision.actions),
        "holds": ";".join(decision.holds), "message_kinds": ";".join(decision.message_kinds),
        "reasons": ";".join(decision.reasons), "policy_version": decision.policy_version,
        "replay": replay, "run_id": run_id,
    }
