"""`make demo`: a few collection cycles on the embedded defaults, start to finish.

It uses the embedded defaults exactly (no connection or variable set): landing folders in
var/landing/, the SQLite collection database var/arrears.db, the outbox var/outbox/ (decisions,
batches, mail as .eml files); Airflow's own metadata database is var/airflow/. Each cycle date
runs the real DAG with `dag.test()` (what `airflow dags test` runs), all in this one process so
Airflow's imports, the DAG parse and its in-process API server are paid once, not per date; each
cycle's full log goes to var/logs/<D>.log, and progress with timings to the terminal.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from devtools.datagen import generate
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


class Timer:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __str__(self) -> str:
        return f"{time.monotonic() - self.started:.1f} s"


@contextmanager
def output_to(log: Path):
    """Everything this process prints meanwhile (Airflow's and the tasks' logs) goes to the
    file: stdout and stderr are pointed at it at the descriptor level, then put back."""
    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with log.open("w") as fh:
            os.dup2(fh.fileno(), 1), os.dup2(fh.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush(), sys.stderr.flush()
                os.dup2(saved[0], 1), os.dup2(saved[1], 2)
    finally:
        os.close(saved[0]), os.close(saved[1])


def run_cycle(dag, day: date, logs: Path) -> None:
    """One cycle date through the real DAG, its log in var/logs/<D>.log."""
    from airflow.utils.state import DagRunState
    log = logs / f"{day}.log"
    with output_to(log):
        # 00:30 UTC is 08:30 in Asia/Shanghai, the schedule's own time of day.
        run = dag.test(logical_date=datetime(day.year, day.month, day.day, 0, 30, tzinfo=timezone.utc))
    if run.state != DagRunState.SUCCESS:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise SystemExit(f"cycle {day} ended {run.state}; the last lines of {log}:\n{tail}\n"
                         f"Fix the error above, then run `make demo` again.")


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
    os.environ.clear()
    os.environ.update(demo_env(home))  # before Airflow is imported: it reads them once
    first = args.last_day - timedelta(days=args.days - 1)
    total = Timer()

    step(f"generating {args.accounts} accounts' billing extracts for {first} .. {args.last_day}")
    generate(home / "landing", first, args.days, args.accounts,
             progress=lambda d, c: print(f"    {d}: " + ", ".join(f"{k} {v}" for k, v in c.items()), flush=True))
    step("creating Airflow's metadata database (var/airflow) and parsing dags/")
    timer = Timer()
    with output_to(home / "logs" / "airflow-setup.log"):
        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils import db
        db.upgradedb()
        dag = DagBag(dag_folder=str(REPO_ROOT / "dags")).get_dag(DAG_ID)
    print(f"    done in {timer}", flush=True)
    for n in range(args.days):
        day = first + timedelta(days=n)
        step(f"cycle {day}: running DAG {DAG_ID} (log: {home / 'logs' / f'{day}.log'})")
        timer = Timer()
        run_cycle(dag, day, home / "logs")
        print(f"    done in {timer}")
        print(describe(home / "outbox", day), flush=True)

    step(f"outputs are under {home / 'outbox'}:")
    last = home / "outbox" / args.last_day.isoformat()
    for path in sorted(last.rglob("*")):
        if path.is_file() and path.parent == last or path.parent.parent == last and path.name == "manifest.csv":
            print(f"    {path.relative_to(home)}")
    mail = list(last.glob("mail/*.eml"))
    if mail:
        print(f"    {len(mail)} emails as .eml files in {last / 'mail'}")
    print(f"\nThe demo took {total}. Why did an account get what it got? "
          ".venv/bin/arrears audit account <account_id>")


if __name__ == "__main__":
    main()
