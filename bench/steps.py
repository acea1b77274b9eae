"""One measured step of the benchmark, run in its own process by cycle_bench.py.

    python bench/steps.py <step> '<json args>'

Prints progress on stderr and, last on stdout, one JSON line: at least ``rows`` and ``seconds``
(the step's own time, without interpreter start-up and imports). Baselines also name ``what``.
"""
from __future__ import annotations

import csv
import json
import math
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from sqlalchemy import text  # noqa: E402

from arrears.cycle import decide as ds  # noqa: E402
from arrears.cycle.run import CycleRun  # noqa: E402
from arrears.db import make_engine  # noqa: E402
from arrears.ingest import ingest_delivery  # noqa: E402
from arrears.policy import load_policy  # noqa: E402
from arrears.policy.business_days import BusinessCalendar  # noqa: E402

D = date(2026, 11, 16)
STEPS = {}


def step(fn):
    STEPS[fn.__name__] = fn
    return fn


class Clock:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def count(engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql), {"d": D}).scalar_one()


# --------------------------------------------------------------------------- ingest

@step
def ingest(url: str, folder: str) -> dict:
    engine = make_engine(url)
    with Clock() as clock:
        result = ingest_delivery(engine, Path(folder), D)
    rows = sum(result.rows.values()) + result.quarantined_total
    return {"rows": rows, "seconds": clock.seconds, "by_file": result.rows}


@step
def ingest_baseline(url: str, folder: str) -> dict:
    """The files as they are into unindexed all-text tables: PostgreSQL COPY; on SQLite (which
    has no COPY) csv.reader rows through one executemany per file."""
    engine = make_engine(url)
    files = sorted(Path(folder).glob("*.csv"))
    rows = 0
    with Clock() as clock, engine.begin() as conn:
        raw = conn.connection.driver_connection
        for path in files:
            with path.open(encoding="utf-8-sig", newline="") as fh:
                header = next(csv.reader(fh))
            table = "raw_" + path.stem
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
            conn.execute(text(f"CREATE TABLE {table} ({', '.join(f'{c} TEXT' for c in header)})"))
            if engine.dialect.name == "postgresql":
                with raw.cursor() as cur:
                    with cur.copy(f"COPY {table} FROM STDIN (FORMAT csv, HEADER true)") as copy, \
                            path.open("rb") as fh:
                        while block := fh.read(1 << 20):
                            copy.write(block)
                    rows += cur.rowcount
            else:
                with path.open(encoding="utf-8-sig", newline="") as fh:
                    reader = csv.reader(fh)
                    next(reader)
                    cur = raw.cursor()
                    cur.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(header))})", reader)
                    rows += cur.rowcount
    what = "raw COPY, unindexed" if engine.dialect.name == "postgresql" else "raw executemany, unindexed"
    return {"rows": rows, "seconds": clock.seconds, "what": what}


# --------------------------------------------------------------------------- staging

@step
def stage(url: str) -> dict:
    engine = make_engine(url)
    with Clock() as clock:
        rows = ds.stage_bills(engine, D)
    return {"rows": rows, "seconds": clock.seconds}


@step
def stage_baseline(url: str) -> dict:
    """One plain INSERT ... SELECT of D's bills with the stage CASE, into an unindexed table."""
    engine = make_engine(url)
    dpd = ("(CAST(:d AS DATE) - due_date)" if engine.dialect.name == "postgresql"
           else "CAST(julianday(:d) - julianday(due_date) AS INTEGER)")
    with Clock() as clock, engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS plain_staged"))
        conn.execute(text("CREATE TABLE plain_staged (cycle_date DATE, bill_id TEXT, account_id TEXT,"
                          " due_date DATE, amount_fen BIGINT, stage TEXT)"))
        rows = conn.execute(text(
            "INSERT INTO plain_staged SELECT cycle_date, bill_id, account_id, due_date, amount_fen,"
            f" CASE WHEN {dpd} >= 31 THEN 'escalation' WHEN {dpd} >= 8 THEN 'formal_notice'"
            f" WHEN {dpd} >= 1 THEN 'reminder' ELSE 'current' END"
            " FROM extract_bills WHERE cycle_date = :d"), {"d": D}).rowcount
    return {"rows": rows, "seconds": clock.seconds, "what": "INSERT…SELECT + CASE, unindexed"}


# --------------------------------------------------------------------------- decisions

@step
def plan(url: str, parts: int) -> dict:
    engine = make_engine(url)
    accounts = count(engine, "SELECT COUNT(*) FROM extract_accounts WHERE cycle_date = :d")
    planned = ds.plan_parts(engine, D, size=math.ceil(accounts / parts))
    return {"rows": accounts, "seconds": 0, "parts": [[p.lo, p.hi] for p in planned]}


@step
def decide(url: str, part: list | None = None) -> dict:
    engine = make_engine(url)
    policy = load_policy()
    calendar = BusinessCalendar.for_policy(policy)
    rng = ds.AccountRange(*part) if part else ds.EVERY_ACCOUNT
    with Clock() as clock:
        result = ds.decide_cycle(engine, CycleRun(D, run_id="bench"), policy, calendar, rng, replay=0)
    return {"rows": result.accounts, "seconds": clock.seconds, "by_stage": result.by_stage}


if __name__ == "__main__":
    name, args = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(STEPS[name](**args), default=str), flush=True)
