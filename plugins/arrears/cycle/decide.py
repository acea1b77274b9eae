"""Staging and decisions for one cycle date: set-based SQL for the bills, the pure policy per
account, streamed so memory stays flat whatever the extract's size."""
from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

from sqlalchemy import Connection, Engine, text

from arrears.cycle import state as decision_state
from arrears.cycle.grouping import AccountStream
from arrears.cycle.run import CycleRun
from arrears.db import sql
from arrears.db.values import as_date, split_list
from arrears.db.bulk import RowWriter
from arrears.db.sqlfiles import run_script, spelled
from arrears.db.stream import tuples
from arrears.ingest.validate import parse_instalments
from arrears.model import (SERVED_NOTICES, Account, CaseEvent, Decision, History, Notice, OpenBill,
                           Payment, SegmentFacts)
from arrears.policy import decide_account
from arrears.policy.business_days import BusinessCalendar
from arrears.policy.config import Policy
from arrears.paths import SQL_DIR
from arrears.policy.experiment import Arms
from arrears.records.decided import DECIDED_TABLES

log = logging.getLogger(__name__)
ACCOUNTS_PER_FETCH = 5000
PART_SIZE = 250_000  # accounts per mapped decide task: a million accounts keep 2 workers busy


@dataclass(frozen=True)
class AccountRange:
    """One part of D's accounts for a mapped task: ``lo`` <= account_id < ``hi`` in byte order
    (``hi`` None: no upper end). The parts of a plan cover every possible id exactly once."""
    lo: str = ""
    hi: str | None = None

    def params(self) -> dict:
        return {"lo": self.lo, "hi": self.hi}


EVERY_ACCOUNT = AccountRange()


def stage_bills(engine: Engine, cycle_date: date) -> int:
    """Apply D's payments to D's bills (include/sql/cycle/stage_bills.sql: only what they paid
    is stored, the view staged_bills applies it); returns the bill count."""
    with engine.begin() as conn:
        run_script(conn, SQL_DIR / "cycle" / "stage_bills.sql", {"d": cycle_date})
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE staged_payments"))  # the decisions' queries plan on it
        return conn.execute(text("SELECT COUNT(*) FROM extract_bills WHERE cycle_date = :d"),
                            {"d": cycle_date}).scalar_one()


def staged(engine: Engine, cycle_date: date) -> bool:
    """Whether D's bills are staged (a replay of a date that ran decides from them as they are)."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM staged_dates WHERE cycle_date = :d"),
                            {"d": cycle_date}).first() is not None


NO_FACTS = SegmentFacts()


def segment_facts(rows: list) -> SegmentFacts:
    """The rows of include/sql/cycle/segment_history.sql of one account as SegmentFacts."""
    if not rows:
        return NO_FACTS
    payments, reminders, notices, broken = [], [], [], []
    for _, fact, day, flag in rows:
        day = as_date(day)
        if fact == "payment":
            payments.append(Payment(day, bool(flag)))
        elif fact == "reminder":
            reminders.append(day)
        elif fact == "notice_served":
            notices.append(day)
        elif fact == "promise_broken":
            broken.append(day)
    return SegmentFacts(tuple(payments), tuple(reminders), tuple(sorted(set(notices))), tuple(broken))


def _history(rows: list, pending: list, happened: list,
             facts: SegmentFacts = SegmentFacts()) -> History:
    messages, prenotices, letters, reports, decided, gaps = [], [], [], [], [], set()
    previous = None
    for _, kind, day, channel, address in happened:
        if kind == "message":
            messages.append((as_date(day), channel))
        elif kind == "credit_prenotice":
            prenotices.append(as_date(day))
        elif kind == "contact_gap":
            gaps.add((channel, address))
    for _, day, stage, entered, actions in rows:
        day, acts = as_date(day), split_list(actions)
        previous = (stage, as_date(entered))
        decided += [(day, n) for n in SERVED_NOTICES if n in acts]
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
                   order_released_on=released_on, segment_facts=facts,
                   notices_decided=tuple(decided), contact_gaps=frozenset(gaps))


def iter_decisions(conn: Connection, cycle_date: date, policy: Policy,
                   calendar: BusinessCalendar, part: AccountRange = EVERY_ACCOUNT,
                   from_state: bool = False) -> Iterator[Decision]:
    """Each account of D's extract (in ``part``) decided from what was known as of D, in
    account order. ``from_state``: the earlier decisions come from the per-account state, which
    the caller has seen holds every date before D (arrears.cycle.state), not the full history."""
    dialect = conn.dialect.name
    d = {"d": cycle_date, **part.params()}
    if dialect == "postgresql":
        # Server-side cursors are planned for their first 10% of rows (nested loops); every row
        # is read here, so plan for all of them (hash joins).
        conn.execute(text("SET LOCAL cursor_tuple_fraction = 1.0"))
        # Each stream is sorted by account (COLLATE "C": no index serves that order); the default
        # 4 MB spilled every sort of a large part to disk (external merge).
        conn.execute(text("SET LOCAL work_mem = '128MB'"))
    arms = Arms(policy)  # with an [experiment], the challenger decides its share of the accounts
    recent = cycle_date - timedelta(days=max(max(p.contact_cap_days, p.contact_repeat_days)
                                             for p in arms.policies))
    bills = AccountStream(tuples(conn, sql("cycle/open_bills.sql", dialect), d, dates=(3,)))
    events = AccountStream(tuples(conn, sql("cycle/case_events.sql", dialect), d, dates=(3, 5)))
    past = "cycle/decision_state.sql" if from_state else "cycle/history.sql"
    history = AccountStream(tuples(conn, sql(past, dialect), d))
    notices = AccountStream(tuples(conn, sql("cycle/pending_notices.sql", dialect), d))
    replies = AccountStream(tuples(conn, sql("cycle/reply_opt_outs.sql", dialect), d))
    plan_payments = AccountStream(tuples(conn, sql("cycle/plan_payments.sql", dialect), d, dates=(1,)))
    since = cycle_date - timedelta(days=max(p.segments.lookback_days for p in arms.policies))
    segments = AccountStream(tuples(conn, sql("cycle/segment_history.sql", dialect),
                                          {**d, "since": since}))
    happened = AccountStream(tuples(conn, sql("cycle/what_happened.sql", dialect),
                                          {**d, "recent": recent}))

    dates: dict[tuple[date, int], date] = {}  # one calendar look-up per serving date and arm

    def earliest_by(notice_days: int):
        def earliest(served: date) -> date:
            if (served, notice_days) not in dates:
                dates[served, notice_days] = calendar.earliest_disconnection(served, notice_days)
            return dates[served, notice_days]
        return earliest

    earliest_for = {p.version: earliest_by(p.disconnection_notice_days) for p in arms.policies}

    for row in tuples(conn, sql("cycle/accounts.sql", dialect), d, ACCOUNTS_PER_FETCH):
        aid = row[0]
        opt_out = split_list(row[8])
        replied = replies.take(aid)
        if replied:  # an opt-out by reply stands whatever the extract says (CONTRACT §7)
            opt_out = opt_out | {ch for _, ch in replied}
        account = Account(*row[:7], protections=split_list(row[7]), opt_out=opt_out,
                          wechat_openid=row[9], app_user_id=row[10])
        open_bills = [OpenBill(*b[1:]) for b in bills.take(aid)]
        case = [CaseEvent(*e[1:7], parse_instalments(e[7])) for e in events.take(aid)]
        paid = [(p[1], p[2]) for p in plan_payments.take(aid)]
        mine = arms.policy_for(aid)
        past = _history(history.take(aid), notices.take(aid), happened.take(aid),
                        segment_facts(segments.take(aid)))
        yield decide_account(account, open_bills, case, past, cycle_date, mine, earliest_for[mine.version],
                     paid)


@dataclass
class DecideResult:
    accounts: int = 0
    by_stage: dict[str, int] = field(default_factory=dict)
    by_segment: dict[str, int] = field(default_factory=dict)
    history: str = ""  # where the earlier decisions were read: "state" or "full" (history.sql)


_DECISION_COLUMNS = ("cycle_date", "account_id", "stage", "stage_entered_on", "dpd",
                     "outstanding_fen", "late_fee_fen", "actions", "holds", "message_kinds",
                     "reasons", "policy_version", "replay", "run_id", "segment", "late_fee_waived",
                     "experiment_id", "arm", "disconnection_earliest", "notice_pending",
                     "serve_in_person")
_BILL_COLUMNS = ("cycle_date", "account_id", "bill_id", "days_overdue", "late_fee_fen")
_IN_PART = ("cycle_date = :d AND account_id >= :lo COLLATE BINARY"
            " AND (CAST(:hi AS TEXT) IS NULL OR account_id < :hi COLLATE BINARY)")


def plan_parts(engine: Engine, cycle_date: date, size: int = PART_SIZE) -> list[AccountRange]:
    """Split D's accounts into parts of about ``size`` accounts, for mapped decide tasks."""
    with engine.connect() as conn:
        bounds = [r[0] for r in conn.execute(sql("cycle/part_bounds.sql", engine.dialect.name),
                                             {"d": cycle_date, "size": size})]
    edges = ["", *bounds]
    return [AccountRange(lo, hi) for lo, hi in zip(edges, [*bounds, None])]


def decide_cycle(engine: Engine, run: CycleRun, policy: Policy, calendar: BusinessCalendar,
                 part: AccountRange = EVERY_ACCOUNT) -> DecideResult:
    """Replace this run's decisions of D (of the accounts in ``part``): the real record, or for
    a replay its own rows keyed by its run id, which never touch the real record
    (arrears.records.decided). A real decide first brings the per-account decision state up to
    D-1 and reads it instead of the full history (arrears.cycle.state)."""
    result = DecideResult()
    where = {"d": run.cycle_date, "run_id": run.run_id, **part.params()}
    dialect = engine.dialect.name
    if not run.replay:  # a replay never changes the real record
        from arrears.delivery.receipts import settle_opt_outs
        with engine.begin() as conn:  # committed first: the reader below must see it
            settle_opt_outs(conn, run.cycle_date)
        decision_state.bring_up_to(engine, run.cycle_date - timedelta(days=1))
    table = {t: f"replay_{t}" if run.replay else t for t in DECIDED_TABLES}
    mine = _IN_PART + (" AND run_id = :run_id" if run.replay else "")
    key: tuple = (run.run_id,) if run.replay else ()  # the replay tables' run_id column first
    key_columns = ("run_id",) if run.replay else ()
    with engine.connect() as reader, engine.begin() as writer:
        decision_state.hold(writer)
        for name in table.values():
            writer.execute(text(spelled(f"DELETE FROM {name} WHERE {mine}", dialect)), where)
        # Read after the DELETE: on SQLite the writer holds the write lock from there on.
        current = decision_state.through(writer) == run.cycle_date - timedelta(days=1)
        result.history = "state" if current else "full"
        rows = RowWriter(writer, table["decisions"], _DECISION_COLUMNS)
        bills = RowWriter(writer, table["decision_bills"], key_columns + _BILL_COLUMNS)
        d = run.cycle_date
        arms = Arms(policy)
        arm_of = {p.version: arms.arm_of_version(p.version) for p in arms.policies}
        by_stage, by_segment = result.by_stage, result.by_segment
        with _no_cyclic_gc():
            for decision in iter_decisions(reader, d, policy, calendar, part, current):
                result.accounts += 1
                by_stage[decision.stage] = by_stage.get(decision.stage, 0) + 1
                by_segment[decision.segment] = by_segment.get(decision.segment, 0) + 1
                rows.add(decision_tuple(decision, int(run.replay), run.run_id, arms.experiment_id,
                                        arm_of[decision.policy_version]))
                for bill_id, days, fee in decision.bill_fees:
                    bills.add((*key, d, decision.account_id, bill_id, days, fee))
                if result.accounts % 100_000 == 0:
                    log.info("decided %d accounts", result.accounts)
        rows.flush()
        bills.flush()
        # decision_actions: the database splits the actions of the decisions just written.
        writer.execute(_split_actions(dialect, run.replay), where)
        if not run.replay:
            decision_state.after_writing(writer, d)
    log.info("decided %d accounts of %s, earlier decisions from the %s", result.accounts, d,
             "per-account state" if current else "full history")
    return result


@contextmanager
def _no_cyclic_gc():
    """The cyclic garbage collector paused: the loop allocates millions of small objects that
    form no reference cycles (reference counting frees them), and each collection would walk the
    whole heap (Airflow's included in a task) for nothing: 5-10 % of the loop's CPU."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@lru_cache(maxsize=8)
def _split_actions(dialect: str, replay: bool):
    """include/sql/cycle/decision_actions.sql for the real record or a replay's tables."""
    body = sql("cycle/decision_actions.sql", dialect).text
    prefix = "replay_" if replay else ""
    return text(body.format(decisions_table=f"{prefix}decisions",
                            actions_table=f"{prefix}decision_actions",
                            key="run_id, " if replay else "", key_value=":run_id, " if replay else ""))


def decision_tuple(decision: Decision, replay: int, run_id: str, experiment_id: str = "",
                   arm: str = "") -> tuple:
    return (decision.cycle_date, decision.account_id, decision.stage, decision.stage_entered_on,
            decision.dpd, decision.outstanding_fen, decision.late_fee_fen,
            ";".join(decision.actions), ";".join(decision.holds),
            ";".join(decision.message_kinds), ";".join(decision.reasons),
            decision.policy_version, replay, run_id, decision.segment, int(decision.late_fee_waived),
            experiment_id, arm, decision.disconnection_earliest, int(decision.notice_pending),
            ";".join(decision.serve_in_person))

