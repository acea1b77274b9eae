"""What-if: replay a policy over the recorded cycle dates D1..D2 without touching the real record.

Safe by construction rather than by care:
- the real collection database is opened READ-ONLY (SQLite ``mode=ro``; PostgreSQL sessions with
  ``default_transaction_read_only``), so no statement of the what-if can write to it;
- everything the cycle's steps write goes to a scratch SQLite file made for this what-if and
  deleted after it: the real state before D1 (decisions, the outbox, notices, their log, orders)
  and the recorded extracts of D1..D2 (what ingest stored) are copied in, then each date runs
  through the cycle's own steps (``stage_bills``, ``decide_cycle``, ``disconnection_step``) with
  the what-if's policy;
- delivery is a model (include/sql/whatif/deliver.sql): the messages its decisions ask for are
  recorded in the scratch outbox as delivered, so the what-if carries its own history forward
  (a letter it "sent" on D1 blocks a second one on D2, its notices are served and proposed);
- its only files are under ``<outbox>/whatif/<id>/``.
"""
from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, make_url, text

from arrears.cycle.decide import decide_cycle, stage_bills
from arrears.db.values import as_date
from arrears.cycle.run import CycleRun
from arrears.db import connect, sql
from arrears.db.bulk import insert_rows
from arrears.disconnection.cycle import disconnection_step
from arrears.model import CHANNELS
from arrears.policy.business_days import BusinessCalendar
from arrears.policy.config import Policy
from arrears.records.service import Recorder, record_service
from arrears.settings import DEFAULT_TIMEZONE

log = logging.getLogger("arrears.whatif")

# What the scratch database receives from the real one (table -> rows), for D1 = :d1, D2 = :d2.
# Inputs: the recorded extracts of D1..D2 and every payment and case event delivered by D2 (the
# steps read them "as of D"). Record: what really happened before D1, the what-if's starting point.
SEED = {
    "deliveries": "cycle_date >= :d1 AND cycle_date <= :d2",
    "extract_accounts": "cycle_date >= :d1 AND cycle_date <= :d2",
    "extract_bills": "cycle_date >= :d1 AND cycle_date <= :d2",
    "quarantine": "cycle_date >= :d1 AND cycle_date <= :d2",
    "payments": "first_seen <= :d2",
    "payment_sightings": "cycle_date >= :d1 AND cycle_date <= :d2",
    "case_events": "first_seen <= :d2",
    "case_event_sightings": "cycle_date <= :d2",
    "channel_opt_outs": "opted_out_on <= :d2",     # customers' replies: what they really said
    "notice_service": "served_on < :d1",
    "contact_gaps": "since_date < :d1",
    "decisions": "cycle_date < :d1 AND replay = 0",
    "outbox": "cycle_date < :d1",
    "disconnection_notices": "served_on < :d1",
    "disconnection_log": "cycle_date < :d1",
    "disconnection_proposals": "cycle_date < :d1",
    "disconnection_approvals": "cycle_date < :d1",
    "disconnection_orders": "released_on < :d1",
}
# Not needed to decide (recomputed, or bookkeeping of the real runs); any other table that has a
# cycle_date is seeded with its rows before D1, and the rest is left out (listed in summary.json).
NOT_SEEDED = {"schema_migrations", "staged_dates", "staged_payments", "decision_bills", "cycle_runs",
              "audit_entries", "audit_chain_head", "audit_checkpoints", "channel_receipts",
              "roll_days", "roll_transitions",
              "replay_decisions", "replay_decision_actions", "replay_decision_bills",
              "decision_state", "decision_state_through"}  # rebuilt by its first decide
ROWS_PER_FETCH = 20_000


class WhatIfError(ValueError):
    """A what-if that cannot run as asked (dates, database, nothing recorded)."""


@dataclass
class DayResult:
    cycle_date: date
    real: list[tuple] | None          # (account_id, stage, actions, holds, outstanding) or None
    whatif: list[tuple]
    seconds: float = 0.0


@dataclass
class WhatIfResult:
    whatif_id: str
    portfolio: str
    policy: Policy
    date_from: date
    date_to: date
    days: list[DayResult] = field(default_factory=list)
    missing: list[date] = field(default_factory=list)   # no recorded extract: not replayed
    seeded: dict[str, int] = field(default_factory=dict)
    not_seeded: list[str] = field(default_factory=list)
    real_versions: list[str] = field(default_factory=list)
    seconds: float = 0.0


def whatif_id(policy: Policy, date_from: date, date_to: date) -> str:
    """Names the policy version and the dates (CONTRACT §5); safe as a folder name."""
    version = re.sub(r"[^A-Za-z0-9._-]+", "-", policy.version).strip("-") or "policy"
    return f"{version}_{date_from.isoformat()}_{date_to.isoformat()}"


def read_only_engine(url: str) -> Engine:
    """The real collection database, opened so that it cannot be written through this engine."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if not path or path == ":memory:" or not Path(path).is_file():
            raise WhatIfError(f"no collection database at {path or '(none)'}: point arrears_db at "
                              "the database the cycle runs on")
        return create_engine(f"sqlite:///file:{Path(path).resolve()}?mode=ro&uri=true",
                             connect_args={"timeout": 60})
    engine = create_engine(url, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_conn, _record):  # noqa: ANN001
        cur = dbapi_conn.cursor()
        cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cur.close()
        dbapi_conn.commit()  # a plain SET inside the driver's implicit transaction would roll back
    return engine


def _columns(conn, table: str) -> list[str]:
    return [c["name"] for c in inspect(conn).get_columns(table)]


def seed(real: Engine, scratch: Engine, d1: date, d2: date,
         progress: Callable[[str], None]) -> tuple[dict[str, int], list[str]]:
    """Copy what the what-if starts from into the (migrated, empty) scratch database."""
    seeded, skipped = {}, []
    with real.connect() as src, scratch.begin() as dst:
        real_tables = set(inspect(src).get_table_names())
        dst.execute(text("PRAGMA defer_foreign_keys = ON"))  # checked at commit, whatever the order
        mine = set(inspect(dst).get_table_names()) - NOT_SEEDED
        for table in [t for t in SEED if t in mine] + sorted(mine - SEED.keys()):
            if table not in real_tables:
                continue
            cols = _columns(src, table)
            where = SEED.get(table) or ("cycle_date < :d1" if "cycle_date" in cols else None)
            if where is None:
                skipped.append(table)
                continue
            names = [c for c in _columns(dst, table) if c in cols]
            rows = src.execution_options(stream_results=True, yield_per=ROWS_PER_FETCH).execute(
                text(f"SELECT {', '.join(names)} FROM {table} WHERE {where}"), {"d1": d1, "d2": d2})
            seeded[table] = insert_rows(dst, table, names, (tuple(r) for r in rows))
            progress(f"seeded {table}: {seeded[table]} rows")
        # A notice closed on or after D1 was still open before D1: the what-if decides its fate.
        dst.execute(text("UPDATE disconnection_notices SET closed_on = NULL, closed_reason = NULL"
                         " WHERE closed_on >= :d1"), {"d1": d1})
        dst.execute(text("CREATE TABLE whatif_channels (channel TEXT PRIMARY KEY)"))
        dst.execute(text("INSERT INTO whatif_channels (channel) VALUES (:c)"),
                    [{"c": c} for c in CHANNELS])
        dst.execute(text("CREATE TABLE whatif_real_outcomes (idem_key TEXT PRIMARY KEY, status TEXT)"))
        failed = src.execute(text(
            "SELECT idem_key, status FROM outbox WHERE cycle_date >= :d1 AND cycle_date <= :d2"
            " AND status = 'permanent_failure'"), {"d1": d1, "d2": d2}).all()
        insert_rows(dst, "whatif_real_outcomes", ("idem_key", "status"), failed)
    return seeded, skipped


_DECISIONS = ("SELECT account_id, stage, actions, holds, outstanding_fen FROM decisions"
              " WHERE cycle_date = :d AND replay = 0")


def _decisions(engine: Engine, day: date) -> list[tuple]:
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(_DECISIONS), {"d": day})]
    rows.sort(key=lambda r: r[0])  # byte order, whatever the database's collation
    return rows


def run_whatif(real_url: str, policy: Policy, portfolio: str, date_from: date, date_to: date,
               scratch_dir: Path | None = None, tz: str = DEFAULT_TIMEZONE,
               progress: Callable[[str], None] = log.info) -> WhatIfResult:
    """Replay ``policy`` over the recorded dates D1..D2; returns both sides of every date."""
    if date_to < date_from:
        raise WhatIfError(f"--from {date_from} is after --to {date_to}: give D1 <= D2")
    started = time.monotonic()
    result = WhatIfResult(whatif_id(policy, date_from, date_to), portfolio, policy, date_from, date_to)
    real = read_only_engine(real_url)
    workdir = Path(tempfile.mkdtemp(prefix="arrears-whatif-", dir=scratch_dir))
    scratch = None
    try:
        with real.connect() as conn:
            if "deliveries" not in inspect(conn).get_table_names():
                raise WhatIfError("the collection database has no cycle tables yet: run a cycle first")
            recorded = {as_date(d) for (d,) in conn.execute(text(
                "SELECT cycle_date FROM deliveries WHERE cycle_date >= :a AND cycle_date <= :b"),
                {"a": date_from, "b": date_to})}
            result.real_versions = sorted(v for (v,) in conn.execute(text(
                "SELECT DISTINCT policy_version FROM decisions WHERE cycle_date >= :a"
                " AND cycle_date <= :b AND replay = 0"), {"a": date_from, "b": date_to}))
        days = [date_from + timedelta(days=n) for n in range((date_to - date_from).days + 1)]
        result.missing = [d for d in days if d not in recorded]
        todo = [d for d in days if d in recorded]
        if not todo:
            raise WhatIfError(f"no recorded extract between {date_from} and {date_to}: pick dates "
                              "the cycle ingested (see the deliveries table or <landing>/)")
        scratch = connect(f"sqlite:///{workdir / 'whatif.db'}")
        progress(f"what-if {result.whatif_id}: seeding a scratch database from the real record "
                 f"before {date_from}")
        result.seeded, result.not_seeded = seed(real, scratch, date_from, date_to, progress)
        calendar = BusinessCalendar.for_policy(policy)
        files = workdir / "outbox"  # the steps' own files land here and are thrown away
        for n, day in enumerate(todo, 1):
            t0 = time.monotonic()
            run = CycleRun(cycle_date=day, run_id=f"whatif__{result.whatif_id}", run_type="whatif",
                           task_id="whatif")
            by = Recorder(run.run_id, run.task_id)
            stage_bills(scratch, day)
            # As the real cycle: what was served (or lost for good) is recorded before deciding,
            # and again after the (modelled) delivery.
            record_service(scratch, tz, policy, calendar, by, known_by=day)
            decide_cycle(scratch, run, policy, calendar)
            with scratch.begin() as conn:
                conn.execute(sql("whatif/deliver.sql", "sqlite"),
                             {"d": day, "stamp": f"{day.isoformat()}T00:00:00.000000Z",
                              "run_id": run.run_id})
            record_service(scratch, tz, policy, calendar, by)
            disconnection_step(scratch, run, policy, calendar, files)
            whatif_rows = _decisions(scratch, day)
            real_rows = _decisions(real, day)
            result.days.append(DayResult(day, real_rows or None, whatif_rows, time.monotonic() - t0))
            changed = len(set(whatif_rows) ^ set(real_rows))
            progress(f"what-if {n}/{len(todo)}: {day} decided {len(whatif_rows)} accounts "
                     f"({changed} rows differ from the real record) in {time.monotonic() - t0:.1f} s")
    finally:
        if scratch is not None:
            scratch.dispose()
        real.dispose()
        shutil.rmtree(workdir, ignore_errors=True)
    result.seconds = time.monotonic() - started
    return result
