"""One cycle through the real path: the e2e services (scheduler, dag-processor, triggerer,
api-server, a Celery worker, PostgreSQL, Redis; tests/e2e/e2e_services.py) run one cycle date of
N accounts, and each task's duration from Airflow's REST API is set beside the same step measured
alone (bench/steps.py, its own process, a fresh PostgreSQL schema, the same landing folder).

    make bench-airflow N=20000        # under the e2e lock: flock /tmp/arrears-e2e.lock ...

"overhead" is the task's duration in Airflow minus the step alone: the task process's start-up,
the plugin's listener (personal-data masking), XCom and the API calls. "queued → start" is how
long the task waited for a worker once the scheduler queued it. The table is printed and
written to var/bench/airflow-<N>.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import urllib.parse
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from cycle_bench import D, fresh_database, drop_database, landing_for, machine, run_step, say  # noqa: E402
from e2e_services import DAG_ID, start_services, teardown  # noqa: E402

BOOKKEEPING = ("wait_for_landing", "plan_decisions", "decide", "announce_proposals")
# task -> the bench/steps.py step that does the same work alone (None: bookkeeping only)
ALONE = {"ingest": "ingest", "stage": "stage", "decide_part": "decide", "credit_report": "credit_file",
         "report": "report", "lawyer_letters": "letters"}


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def run_cycle_on_services(root: Path, folder: Path, timeout: float) -> tuple[dict, list[dict]]:
    """Start the services, run D's cycle as a manual run, return the run and its task instances."""
    svc = start_services(root)
    try:
        shutil.copytree(folder, svc.landing / D.isoformat())
        svc.wait("the DAG to be parsed and serialized",
                 lambda: svc.rest("GET", f"/api/v2/dags/{DAG_ID}", ok=(200, 404))[0] == 200, 300)
        run_id = f"bench__{D}"
        svc.rest("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                 {"dag_run_id": run_id, "logical_date": f"{D}T00:30:00Z", "conf": {}})
        svc.rest("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
        started = time.monotonic()
        rid = urllib.parse.quote(run_id, safe="")
        while True:
            svc.check_alive()
            _, runs = svc.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=20")
            for other in runs["dag_runs"]:  # unpausing schedules today's run: not ours, stop it
                if other["dag_run_id"] != run_id and other["state"] in ("queued", "running"):
                    svc.rest("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/"
                             f"{urllib.parse.quote(other['dag_run_id'], safe='')}", {"state": "failed"})
            _, run = svc.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{rid}")
            _, tis = svc.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{rid}/taskInstances?limit=100")
            states: dict[str, int] = {}
            for ti in tis["task_instances"]:
                states[ti["state"] or "none"] = states.get(ti["state"] or "none", 0) + 1
            say(f"  run {run['state']} after {time.monotonic() - started:.0f} s: "
                + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
            if run["state"] in ("success", "failed"):
                break
            if time.monotonic() - started > timeout:
                raise SystemExit(f"the run did not finish in {timeout:.0f} s\n{svc.run_report()}")
            time.sleep(5)
        if run["state"] != "success":
            raise SystemExit(f"the run failed\n{svc.run_report()}")
        return run, tis["task_instances"]
    finally:
        teardown(svc)


def alone(folder: Path, work: Path) -> dict[str, dict]:
    """Each step of ALONE in its own process on a fresh PostgreSQL schema, in the cycle's order."""
    tag = f"af{os.getpid()}"
    url = fresh_database("postgresql", work, tag)
    outbox = str(work / f"outbox-{tag}")
    results = {}
    try:
        for step in ("ingest", "stage", "decide", "credit_file", "letters", "report"):
            say(f"alone: {step}")
            args = {"url": url}
            if step == "ingest":
                args["folder"] = str(folder)
            if step in ("credit_file", "report", "letters"):
                args["work"] = outbox
            if step == "letters":
                args["limit"] = 10**9
            results[step] = run_step(step, **args)
    finally:
        drop_database("postgresql", url, tag, work)
        shutil.rmtree(outbox, ignore_errors=True)
    return results


def table(run: dict, tis: list[dict], steps: dict[str, dict]) -> str:
    header = ("task", "state", "try", "queued → start s", "duration in Airflow s", "step alone s",
              "overhead s", "target")
    rows = []
    for ti in sorted(tis, key=lambda t: (t["start_date"] or "", t["map_index"])):
        name = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
        duration = ti["duration"]
        step = steps.get(ALONE.get(ti["task_id"], ""), None)
        alone_s = step["seconds"] if step else (0.0 if ti["task_id"] in BOOKKEEPING else None)
        wait = _seconds(ti.get("queued_when"), ti["start_date"])
        overhead = duration - alone_s if duration is not None and alone_s is not None else None
        target = ""
        if ti["task_id"] in BOOKKEEPING:
            target = "< 5 s: " + ("met" if duration is not None and duration < 5 else "**missed**")
        rows.append((name, ti["state"], str(ti["try_number"]),
                     f"{wait:.1f}" if wait is not None else "",
                     f"{duration:.1f}" if duration is not None else "",
                     f"{alone_s:.1f}" if step else ("—" if alone_s == 0.0 else ""),
                     f"{overhead:.1f}" if overhead is not None else "", target))
    wall = _seconds(run["start_date"], run["end_date"])
    busy = sum(t["duration"] or 0 for t in tis)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append(f"\nRun wall time (start to end in Airflow): **{wall:.0f} s** (target < 300 s: "
                 f"{'met' if wall < 300 else 'missed'}); task durations add up to {busy:.0f} s; "
                 f"mean overhead per task with a step alone: "
                 f"{_mean_overhead(tis, steps):.1f} s.")
    return "\n".join(lines)


def _mean_overhead(tis: list[dict], steps: dict[str, dict]) -> float:
    overheads = [t["duration"] - steps[ALONE[t["task_id"]]]["seconds"] for t in tis
                 if t["task_id"] in ALONE and t["duration"] is not None
                 and t["task_id"] != "decide_part"] + [
        t["duration"] for t in tis if t["task_id"] in BOOKKEEPING and t["duration"] is not None]
    return sum(overheads) / max(1, len(overheads))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=REPO / "var" / "bench")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the run")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the services' and tasks' logs in <work>/airflow-<N>-logs")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    say(f"one cycle of ~{args.accounts:,} accounts on the e2e services; {machine()}; "
        f"load average {os.getloadavg()[0]:.1f}")
    folder = landing_for(args.work, args.accounts, args.seed)
    root = args.work / f"airflow-{os.getpid()}"
    try:
        say("starting the services (api-server, scheduler, dag-processor, triggerer, Celery worker)")
        run, tis = run_cycle_on_services(root, folder, args.timeout)
    finally:
        if args.keep_logs:
            kept = args.work / f"airflow-{args.accounts}-logs"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(root / "airflow", kept,
                            ignore=lambda folder, names: [n for n in names if n.endswith((".cfg", ".db"))])
            say(f"the services' and tasks' logs are kept in {kept}")
        shutil.rmtree(root, ignore_errors=True)
    say("the same steps alone")
    os.environ["ARREARS_LETTER_WORKERS"] = "1"  # as the services run them (e2e_services)
    steps = alone(folder, args.work)
    report = (f"Accounts: ~{args.accounts:,} (seed {args.seed}), cycle date {D}; machine: {machine()};"
              f" load average at the end {os.getloadavg()[0]:.1f}\n\n" + table(run, tis, steps) + "\n")
    out = args.work / f"airflow-{args.accounts}.md"
    out.write_text(report, encoding="utf-8")
    print("\n" + report)
    print(f"(written to {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
