"""The audit chain's daily verification against a full one over a simulated year.

    python bench/audit_bench.py                          # make bench-audit: 1,000 accounts, 365 days
    python bench/audit_bench.py --accounts 20000 --db postgresql

A book of N accounts in arrears is audited every day for ``--days`` days: one decision entry per
account and a message entry for 30 % of them (what the cycle's audit task appends), then the
audit task's verification: from the last checkpoint, and a new checkpoint anchored in the day's
outbox folder. On the milestone days the full verification (``arrears audit verify --full``)
is timed beside it on the same chain. The table shows both, and what the measured per-entry
rates give for a 1 M-account book (1.3 M entries a day) after the same number of days.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

PG_URL = os.environ.get("ARREARS_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
START = date(2026, 1, 1)
MESSAGE_SHARE = 0.3
ONE_MILLION_DAY = int(1_000_000 * (1 + MESSAGE_SHARE))


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def day_entries(day: date, accounts: int):
    from arrears.audit.trail import Entry
    run = f"scheduled__{day}T00:30:00+00:00"
    for i in range(accounts):
        account = f"AC{i:08d}"
        yield Entry(key=f"decision/{day}/{account}", kind="decision", account_id=account,
                    cycle_date=day, run_id=run, task_id="decide", try_number=1,
                    payload={"stage": "formal_notice", "dpd": 12, "outstanding_fen": 23456,
                             "late_fee_fen": 281, "actions": ["email", "sms", "call_list"],
                             "holds": [], "reasons": ["stage:formal_notice:dpd_12", "email:due",
                                                      "sms:due", "call_list:formal_notice"],
                             "policy_version": "default-2026.11", "replay": False,
                             "bills": [{"bill_id": f"B{i}", "days_overdue": 12,
                                        "late_fee_fen": 281}]})
        if i % 10 < MESSAGE_SHARE * 10:
            yield Entry(key=f"message/{day}:{account}:email/sent", kind="message",
                        account_id=account, cycle_date=day, run_id=run,
                        task_id="dispatch_messages", try_number=1,
                        payload={"channel": "email", "outcome": "sent", "template": "email",
                                 "template_version": "ab12cd34", "content_sha256": "f" * 64,
                                 "kinds": ["formal_notice"], "attempts": 1})


def engine_for(db: str, work: Path):
    from arrears.db import connect
    if db == "sqlite":
        return connect(f"sqlite:///{work / 'audit-bench.db'}"), None
    from sqlalchemy import create_engine, text
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    return connect(f"{PG_URL}?options=-csearch_path%3D{schema}"), (admin, schema)


def run(db: str, accounts: int, days: int, milestones: set[int], work: Path) -> list[dict]:
    from arrears.audit import checkpoint, trail
    engine, cleanup = engine_for(db, work)
    outbox = work / f"outbox-{db}"
    rows = []
    try:
        for n in range(1, days + 1):
            day = START + timedelta(days=n - 1)
            trail.record(engine, day_entries(day, accounts))
            with engine.begin() as conn:  # what the audit task does after its append
                started = time.perf_counter()
                daily = checkpoint.verify_daily(conn)
                daily_s = time.perf_counter() - started
                checkpoint.write(conn, outbox, day, daily)
            assert daily.ok, daily.describe()
            if n in milestones:
                started = time.perf_counter()
                with engine.connect() as conn:
                    full = checkpoint.verify_full(conn)
                full_s = time.perf_counter() - started
                assert full.ok, full.describe()
                rows.append({"db": db, "day": n, "chain": full.result.entries,
                             "daily_read": daily.result.entries, "daily_s": daily_s,
                             "full_read": full.result.entries, "full_s": full_s})
                say(f"{db} day {n}: chain {full.result.entries:,} entries; daily verification "
                    f"{daily_s:.3f} s ({daily.result.entries:,} read), full {full_s:.2f} s")
            elif n % 30 == 0:
                say(f"{db} day {n} of {days}")
    finally:
        engine.dispose()
        if cleanup:
            from sqlalchemy import text
            admin, schema = cleanup
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()
    return rows


def table(rows: list[dict], accounts: int) -> str:
    per_day = int(accounts * (1 + MESSAGE_SHARE))
    out = ["| db | day | entries in chain | daily verification s (entries read) | full verification s "
           "(entries read) | full / daily | 1 M book, same day: daily s | 1 M book: full s |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        # The walk's per-entry time measured by the full verification, applied to 1.3 M
        # entries a day: the daily check walks one day of them, the full one every day so far.
        per_entry = r["full_s"] / r["full_read"]
        daily_1m = per_entry * ONE_MILLION_DAY
        full_1m = per_entry * ONE_MILLION_DAY * r["day"]
        out.append(f"| {r['db']} | {r['day']} | {r['chain']:,} | {r['daily_s']:.3f} "
                   f"({r['daily_read']:,}) | {r['full_s']:.2f} ({r['full_read']:,}) | "
                   f"{r['full_s'] / r['daily_s']:.0f}x | {daily_1m:.0f} | {full_1m:,.0f} |")
    out.append(f"\n{accounts:,} accounts, {per_day:,} entries a day; the 1 M columns scale the "
               f"per-entry time of the full verification to {ONE_MILLION_DAY:,} entries a day.")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--milestones", default="30,90,180,365")
    args = parser.parse_args(argv)
    milestones = {int(m) for m in args.milestones.split(",") if int(m) <= args.days} | {args.days}
    rows = []
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        for db in args.db.split(","):
            say(f"{db}: {args.days} days of {args.accounts:,} accounts")
            rows += run(db, args.accounts, args.days, milestones, Path(tmp))
    text_ = table(rows, args.accounts)
    print(text_)
    out = REPO / "var" / "bench" / f"audit-{args.accounts}-{args.days}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text_ + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
