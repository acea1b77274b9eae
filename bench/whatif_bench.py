"""What-if speed against the real cycle on the same book, measured in the same run.

    .venv/bin/python bench/whatif_bench.py --accounts 20000 --history 10 --days 30 --out /tmp/wb

Generates a synthetic book (bench's seeded datagen), runs the real cycle's ingest, stage, decide
and disconnection steps for every date on a SQLite collection database (the baseline: what the
cycle itself spends on those dates), then a what-if of `early_letters` over the last ``--days``
dates. With ``--experiment`` the real cycles run a champion/challenger (default vs early_letters,
share 0.2). Prints one JSON line with both times; leaves the outbox (reports) under --out.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))
sys.path.insert(0, str(REPO))  # devtools.datagen

from arrears.cycle.decide import decide_cycle, stage_bills  # noqa: E402
from arrears.cycle.run import CycleRun  # noqa: E402
from devtools.datagen import generate  # noqa: E402
from arrears.db import connect  # noqa: E402
from arrears.disconnection.cycle import disconnection_step  # noqa: E402
from arrears.ingest import ingest_delivery  # noqa: E402
from arrears.paths import POLICY_DIR  # noqa: E402
from arrears.policy import load_policy  # noqa: E402
from arrears.policy.business_days import BusinessCalendar  # noqa: E402
from arrears.report.cycle_report import write_cycle_report  # noqa: E402
from arrears.whatif import run_whatif  # noqa: E402
from arrears.whatif.outputs import write_outputs  # noqa: E402


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=20_000)
    ap.add_argument("--history", type=int, default=10, help="real cycle dates before the what-if")
    ap.add_argument("--days", type=int, default=30, help="dates the what-if replays")
    ap.add_argument("--first", type=date.fromisoformat, default=date(2026, 10, 1))
    ap.add_argument("--out", type=Path, default=Path("/tmp/arrears-whatif-bench"))
    ap.add_argument("--experiment", action="store_true")
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    land, outbox, policies = args.out / "landing", args.out / "outbox", args.out / "policy"
    policies.mkdir(parents=True)
    for name in ("default", "early_letters"):
        shutil.copy(POLICY_DIR / f"{name}.toml", policies / f"{name}.toml")
    (policies / "champion.toml").write_text(
        'version = "champion-2026.12"\n[experiment]\nid = "letters-at-45"\n'
        'challenger = "early_letters"\nshare = 0.2\n')
    total = args.history + args.days
    say(f"generating {args.accounts} accounts x {total} dates")
    generate(land, args.first, total, args.accounts, seed=7)
    db_url = f"sqlite:///{args.out / 'arrears.db'}"
    engine = connect(db_url)
    policy = load_policy("champion" if args.experiment else "default", policies)
    calendar = BusinessCalendar.for_policy(policy)
    timings = {"ingest": 0.0, "stage": 0.0, "decide": 0.0, "disconnection": 0.0}
    days = [args.first + timedelta(days=n) for n in range(total)]
    for n, day in enumerate(days, 1):
        run = CycleRun(cycle_date=day, run_id=f"bench__{day}")
        t = time.monotonic()
        ingest_delivery(engine, land / day.isoformat(), day)
        timings["ingest"] += time.monotonic() - t
        t = time.monotonic()
        stage_bills(engine, day)
        timings["stage"] += time.monotonic() - t
        t = time.monotonic()
        decide_cycle(engine, run, policy, calendar)
        timings["decide"] += time.monotonic() - t
        t = time.monotonic()
        disconnection_step(engine, run, policy, calendar, outbox)
        timings["disconnection"] += time.monotonic() - t
        say(f"real cycle {n}/{total}: {day}")
    whatif_days = days[args.history:]
    t = time.monotonic()
    result = run_whatif(db_url, load_policy("early_letters", policies), "early_letters",
                        whatif_days[0], whatif_days[-1], progress=say)
    folder = write_outputs(result, outbox)
    whatif_seconds = time.monotonic() - t
    write_cycle_report(engine, outbox, days[-1])
    real_same_dates = sum(timings.values()) * len(whatif_days) / total
    print(json.dumps({
        "accounts": args.accounts, "whatif_dates": len(whatif_days),
        "whatif_seconds": round(whatif_seconds, 1),
        "whatif_seeding_rows": sum(result.seeded.values()),
        "real_cycle_steps_seconds_same_dates": round(real_same_dates, 1),
        "real_by_step_all_dates": {k: round(v, 1) for k, v in timings.items()},
        "changed_rows": sum(1 for _ in (folder / "changes.csv").open()) - 1,
        "report": str(folder / "report.html"),
        "cycle_report": str(outbox / days[-1].isoformat() / "cycle_report.html")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
