"""`make demo`: a few collection cycles on the embedded defaults, start to finish.

It uses the embedded defaults exactly (no connection or variable set): landing folders in
var/landing/, the SQLite collection database var/arrears.db, the outbox var/outbox/ (decisions,
batches, mail as .eml files); Airflow's own metadata database is var/airflow/. Each cycle date
runs the real DAG with `airflow dags test`; its full log goes to var/logs/.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from arrears.datagen import generate
from arrears.paths import REPO_ROOT

DAG_ID = "arrears_collection_cycle"


def demo_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW_VAR_ARREARS", "AIRFLOW_CONN_ARREARS"))}
    env.update({
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # The demo sends whatever the wall clock says; production keeps 08:00-21:00.
        "AIRFLOW_VAR_ARREARS_CONTACT_WINDOW": "00:00-24:00",
        "ARREARS_TASK_RETRIES": "0",
        "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    })
    return env


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def run_cycle(env: dict, day: date, logs: Path) -> float:
    log = logs / f"{day}.log"
    started = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.run([sys.executable, "-m", "airflow", "dags", "test", DAG_ID, day.isoformat()],
                              env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=900)
    text = log.read_text(errors="replace")
    if proc.returncode != 0 or "DagRun Finished" not in text or "state=success" not in text:
        tail = "\n".join(text.splitlines()[-25:])
        raise SystemExit(f"cycle {day} failed; the last lines of {log}:\n{tail}\n"
                         f"Fix the error above, then run `make demo` again.")
    return time.monotonic() - started


def describe(outbox: Path, day: date) -> str:
    summary = json.loads((outbox / day.isoformat() / "cycle_summary.json").read_text())
    stages = ", ".join(f"{k} {v}" for k, v in summary["by_stage"].items())
    actions = ", ".join(f"{k} {v}" for k, v in summary["by_action"].items() if v)
    holds = ", ".join(f"{k} {v}" for k, v in summary["by_hold"].items() if v)
    messages = summary.get("messages", {})
    return (f"    {summary['accounts']} accounts ({stages}); quarantined rows {summary['quarantined']}\n"
            f"    actions: {actions}\n    holds: {holds}\n"
            f"    messages: " + ", ".join(f"{k} {v}" for k, v in messages.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000, help="population size (default 2000)")
    parser.add_argument("--days", type=int, default=3, help="consecutive cycle dates (default 3)")
    parser.add_argument("--last-day", type=date.fromisoformat, default=date.today(),
                        help="the last cycle date (default today)")
    args = parser.parse_args(argv)

    home = REPO_ROOT / "var"
    # Every demo starts from nothing, so it always tells the same story.
    for name in ("landing", "outbox", "airflow", "logs", "arrears.db", "arrears.db-wal", "arrears.db-shm"):
        path = home / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    (home / "logs").mkdir(parents=True)
    env = demo_env(home)
    first = args.last_day - timedelta(days=args.days - 1)

    step(f"generating {args.accounts} accounts' billing extracts for {first} .. {args.last_day}")
    generate(home / "landing", first, args.days, args.accounts,
             progress=lambda d, c: print(f"    {d}: " + ", ".join(f"{k} {v}" for k, v in c.items()), flush=True))
    step("creating Airflow's metadata database (var/airflow)")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for n in range(args.days):
        day = first + timedelta(days=n)
        step(f"cycle {day}: running DAG {DAG_ID} (log: {home / 'logs' / f'{day}.log'})")
        seconds = run_cycle(env, day, home / "logs")
        print(f"    done in {seconds:.0f} s")
        print(describe(home / "outbox", day), flush=True)

    step(f"outputs are under {home / 'outbox'}:")
    last = home / "outbox" / args.last_day.isoformat()
    for path in sorted(last.rglob("*")):
        if path.is_file() and path.parent == last or path.parent.parent == last and path.name == "manifest.csv":
            print(f"    {path.relative_to(home)}")
    mail = list(last.glob("mail/*.eml"))
    if mail:
        print(f"    {len(mail)} emails as .eml files in {last / 'mail'}")
    print("\nWhy did an account get what it got? .venv/bin/arrears audit account <account_id>")


if __name__ == "__main__":
    main()
