"""The cycle's cost at scale: each step of one cycle date on SQLite and PostgreSQL, beside a
baseline measured in the same run on the same data, with each step's peak memory.

    python bench/cycle_bench.py --accounts 50000            # make bench
    python bench/cycle_bench.py --accounts 1000000 --db postgresql

Every step runs in its own process, so its peak RSS (from wait4) is the step's own. The landing
folder is generated once per size and seed under var/bench/ and reused.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))
sys.path.insert(0, str(REPO))  # devtools.datagen
sys.path.insert(0, str(REPO / "bench"))

import sampled_profile  # noqa: E402
import cpu_share  # noqa: E402
from cpu_share import Reading, Share  # noqa: E402

D = date(2026, 11, 16)            # a Monday, inside the contact window's week
STATE_THROUGH = D - timedelta(days=8)  # the earlier cycle (steps.history); its quiet next day not
HISTORY_REPEATS = 5
PG_URL = os.environ.get("ARREARS_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# --------------------------------------------------------------------------- the landing folder

def population_for(accounts: int, seed: int) -> int:
    """How many synthetic customers give about ``accounts`` accounts in D's extract (only the
    ones in arrears on D are listed)."""
    from devtools.datagen import make_account, rows_for_day
    sample = 3000
    listed = sum(rows_for_day(make_account(seed, i, D), D)[0] is not None for i in range(sample))
    return max(1, round(accounts * sample / listed))


def landing_for(work: Path, accounts: int, seed: int) -> Path:
    """``<work>/landing-<N>-<seed>/<D>/``, generated on first use (the progress line shows the
    files growing)."""
    root = work / f"landing-{accounts}-{seed}"
    folder = root / D.isoformat()
    if (root / "complete").exists():
        return folder
    population = population_for(accounts, seed)
    say(f"generating a landing folder of ~{accounts:,} accounts ({population:,} customers) in {root}")
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/plugins']; "
            "from pathlib import Path; "
            "from datetime import date; from devtools.datagen import generate; "
            "generate(Path(sys.argv[2]), date.fromisoformat(sys.argv[3]), 1, int(sys.argv[4]), "
            "int(sys.argv[5]))")
    child = subprocess.Popen([sys.executable, "-c", code, str(REPO), str(root),
                              D.isoformat(), str(population), str(seed)])
    while child.poll() is None:
        time.sleep(5)
        size = sum(p.stat().st_size for p in folder.glob("*.csv")) if folder.exists() else 0
        say(f"  ... {size / 1e6:,.0f} MB written")
    if child.returncode:
        raise SystemExit(f"generating the landing folder failed (exit {child.returncode})")
    (root / "complete").write_text("ok\n")
    return folder


# --------------------------------------------------------------------------- databases

def fresh_database(kind: str, work: Path, tag: str) -> str:
    """An empty, migrated collection database: a SQLite file or a PostgreSQL schema."""
    from sqlalchemy import create_engine, text
    if kind == "sqlite":
        path = work / f"bench-{tag}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        schema = f"bench_{tag}"
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        admin.dispose()
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    from arrears.db import connect
    connect(url).dispose()
    return url


def drop_database(kind: str, url: str, tag: str, work: Path) -> None:
    from sqlalchemy import create_engine, text
    if kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work / f'bench-{tag}.db'}{suffix}").unlink(missing_ok=True)
        return
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS bench_{tag} CASCADE"))
    admin.dispose()


# --------------------------------------------------------------------------- running a step

# --profile: a folder for py-spy's samples of every step process (None: not profiled)
PROFILE_DIR: Path | None = None
_profiled = itertools.count(1)


def start_step(step: str, args: dict) -> tuple[subprocess.Popen, Path | None]:
    raw, env = None, dict(os.environ)
    if PROFILE_DIR is not None:  # the step attaches py-spy itself once its imports are done
        db = str(args.get("url", "")).split(":", 1)[0].split("+", 1)[0]
        raw = PROFILE_DIR / f"{next(_profiled):02d}-{db}-{step}.txt"
        env[sampled_profile.ENV] = str(raw)
    child = subprocess.Popen([sys.executable, str(REPO / "bench" / "steps.py"), step,
                              json.dumps(args, default=str)], stdout=subprocess.PIPE, text=True,
                             env=env)
    return child, raw


def finish_step(step: str, out: str, returncode: int, raw: Path | None) -> dict:
    if returncode:
        raise SystemExit(f"step {step} failed (exit {returncode}); its output:\n{out}")
    result = json.loads(out.strip().splitlines()[-1])
    result["share"] = Share.between(*(Reading(**r) for r in result["readings"]))
    result["profile"] = raw
    return result


def run_step(step: str, **args) -> dict:
    """Run ``steps.<step>`` in a child process; its result plus wall time, peak RSS (MB) and
    where the cores' time went (``share``)."""
    started = time.perf_counter()
    child, raw = start_step(step, args)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not all children's
    result = finish_step(step, out, os.waitstatus_to_exitcode(status), raw)
    result["wall"] = time.perf_counter() - started
    result["rss_mb"] = usage.ru_maxrss / 1024
    result["cpu"] = usage.ru_utime + usage.ru_stime  # the step's own CPU (not the server's)
    return result


def run_concurrently(step: str, args_list: list[dict]) -> tuple[float, list[dict]]:
    """Run several children of ``step`` at once (the Celery workers); wall time and results."""
    # A part only writes its own accounts' rows, so the parts never wait on each other's locks.
    started = time.perf_counter()
    children = [start_step(step, a) for a in args_list]
    results = []
    for child, raw in children:
        out, _ = child.communicate()
        results.append(finish_step(step, out, child.returncode, raw))
    return time.perf_counter() - started, results


# --------------------------------------------------------------------------- the table

class Table:
    HEADER = ("db", "step", "rows", "seconds", "rows/s", "baseline", "baseline s", "ratio",
              "target", "peak RSS MB", "process CPU s", "server CPU s",
              "the cores' time: ours · server · other · idle")

    def __init__(self):
        self.rows: list[tuple] = []
        self.shares: list[tuple[str, Share]] = []       # for the chart
        self.profiles: list[tuple[str, list[Path]]] = []  # --profile: the rows' raw samples

    def add(self, db: str, step: str, rows: int, seconds: float, baseline: str = "",
            base_seconds: float | None = None, target: str = "", measured: dict | None = None,
            share: Share | None = None) -> None:
        """``measured``: the step's result (peak RSS, CPU, where the cores' time went, its
        profile); ``share``: the cores' time of a row measured otherwise (the workers)."""
        measured = measured or {}
        rss, cpu = measured.get("rss_mb"), measured.get("cpu")
        share = share or measured.get("share")
        ratio = f"{seconds / base_seconds:.2f}x" if base_seconds else ""
        row = (db, step, f"{rows:,}", f"{seconds:.2f}", f"{rows / seconds:,.0f}" if seconds else "",
               baseline, f"{base_seconds:.2f}" if base_seconds else "", ratio, target,
               f"{rss:.0f}" if rss else "", f"{cpu:.1f}" if cpu else "",
               f"{share.server:.1f}" if share else "", share.label() if share else "")
        self.rows.append(row)
        if share:
            self.shares.append((f"{db}: {step.split(' (')[0]}", share))
        raw = measured.get("profile")
        if raw:  # one file a process (the workers: one each)
            self.profiles.append((f"{db}: {step.split(' (')[0]}", raw if isinstance(raw, list) else [raw]))
        say("  " + " | ".join(c for c in row if c))

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.HEADER) + " |", "|" + "---|" * len(self.HEADER)]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)

    def text(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) for i, h in enumerate(self.HEADER)]
        fmt = "  ".join("{:>%d}" % w for w in widths)
        return "\n".join([fmt.format(*self.HEADER), *(fmt.format(*r) for r in self.rows)])


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((line.split(":", 1)[1].strip() for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), "?")
    gib = int(mem.split()[0]) / 2**20
    return f"{os.cpu_count()} CPUs ({cpu}), {gib:.1f} GiB RAM, Python {platform.python_version()}"


# --------------------------------------------------------------------------- the benchmark

@contextmanager
def smtp_sink():
    """A local aiosmtpd server that accepts and discards every message, in its own process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                               "-c", "aiosmtpd.handlers.Sink"])
    def cpu() -> float:  # the sink's own CPU seconds so far
        fields = Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield port, cpu
    finally:
        server.terminate()
        server.wait()


def decide_again(url: str) -> dict:
    """The decide of D with the decision state set back to STATE_THROUGH (outside the clock), so
    that it folds the same day in each time."""
    run_step("decision_state", url=url, through=str(STATE_THROUGH))
    return run_step("decide", url=url)


def fastest(runs: list[dict]) -> dict:
    """The run least disturbed by the rest of the machine (its other work only adds time)."""
    return min(runs, key=lambda r: r["seconds"])


def history_comparison(kind: str, folder: Path, work: Path, table: Table, url: str, tag: str,
                       history_days: int) -> None:
    """A second database, the same extract and earlier cycle plus ``history_days`` more days of
    decisions; then the decide of D on the week-old and the year-old book alternately,
    HISTORY_REPEATS times each, the fastest of each compared (the machine is shared: alternating
    puts both under the same load), and once on the year-old book with the full history read,
    for reference."""
    old_tag = f"{tag}y"
    old = fresh_database(kind, work, old_tag)
    try:
        say(f"{kind}: a second book with {history_days} more days of history before D"
            " (every account, every day)")
        for name, args in (("ingest", {"folder": str(folder)}), ("stage", {}), ("history", {})):
            run_step(name, url=old, **args)
        older = run_step("older_history", url=old, days=history_days)
        say(f"  {older['rows']:,} earlier decisions written in {older['seconds']:.0f} s")
        built = run_step("decision_state", url=old, through=str(STATE_THROUGH))
        say(f"  its decision state rebuilt in {built['seconds']:.1f} s (outside the clock)")
        weeks, years = [], []
        for _ in range(HISTORY_REPEATS):
            weeks.append(decide_again(url))
            years.append(decide_again(old))
            for label, r in (("week", weeks[-1]), ("year", years[-1])):
                say(f"  {label}: decide {r['seconds']:.2f} s (the state's fold"
                    f" {r['fold_seconds']:.2f} s), earlier decisions from the {r['history']}")
        week, year = fastest(weeks), fastest(years)
        assert {r["history"] for r in weeks + years} == {"state"}
        table.add(kind, f"decisions after {history_days + 8} days of history"
                  f" (best of {HISTORY_REPEATS}, alternating)", year["rows"], year["seconds"],
                  "decisions, 8 days of history (same)", week["seconds"],
                  "<= 1.15x (same as after a week)", measured=year)
        run_step("decision_state", url=old, through=None)  # out of use: the full history read
        full = run_step("decide", url=old)
        assert full["history"] == "full"
        table.add(kind, f"decisions after {history_days + 8} days, full history read"
                  " (no state, reference)", full["rows"], full["seconds"],
                  "decisions, 8 days of history (same)", week["seconds"], "", measured=full)
    finally:
        drop_database(kind, old, old_tag, work)


def mail_row(r: dict, b: dict, sessions: int) -> str:
    """The mail row's label: per message, the wall time of each phase and where the CPU went
    (sending: our processes vs the sink's, the baseline's beside it)."""
    def ms(seconds: float, n: int) -> str:
        return f"{seconds / max(1, n) * 1e3:.2f}"
    over = "1 SMTP session" if sessions == 1 else f"{sessions} SMTP sessions, a process each"
    return (f"mail: render+queue+send over {over} ({r['queued']:,} queued; a message: render+queue"
            f" {ms(r['queue_seconds'], r['queued'])} ms, send {ms(r['send_seconds'], r['rows'])} ms;"
            f" CPU while sending: ours {ms(r['send_cpu'], r['rows'])} ms, the sink's"
            f" {ms(r['sink_cpu'], r['rows'])} ms; baseline: ours {ms(b['send_cpu'], b['rows'])} ms,"
            f" the sink's {ms(b['sink_cpu'], b['rows'])} ms)")


def bench_database(kind: str, folder: Path, work: Path, table: Table, workers: bool,
                   extra_steps: list[str], limits: dict, history_days: int = 0) -> None:
    tag = f"{kind[:2]}{os.getpid()}"
    url = fresh_database(kind, work, tag)
    try:
        say(f"{kind}: ingest")
        ingest = run_step("ingest", url=url, folder=str(folder))
        base = run_step("ingest_baseline", url=url, folder=str(folder))
        table.add(kind, "ingest", ingest["rows"], ingest["seconds"], base["what"], base["seconds"],
                  "<= 3x raw COPY", measured=ingest)

        say(f"{kind}: personal-data digests for the log masker (once per delivery, ingest task)")
        prepared = run_step("pii_prepare", url=url)
        table.add(kind, "log masking digests (once per delivery)", prepared["rows"],
                  prepared["seconds"], "", None, "", measured=prepared)
        say(f"{kind}: personal-data masking at a task's start-up")
        pii = run_step("pii_start_up", url=url)
        table.add(kind, f"log masking start-up ({pii['airflow_masker']} values to Airflow's masker;"
                  f" {pii['line_ms']:.2f} ms a line)", pii["rows"], pii["seconds"], "", None,
                  "< 1 s at 1 M", measured=pii)

        say(f"{kind}: staging")
        stage = run_step("stage", url=url)
        base = run_step("stage_baseline", url=url)
        table.add(kind, "staging", stage["rows"], stage["seconds"], base["what"], base["seconds"],
                  "<= 2x INSERT…SELECT", measured=stage)

        say(f"{kind}: an earlier cycle's decisions as history")
        run_step("history", url=url)
        # The decision state as the cycles before D left it, the quiet day after the earlier
        # cycle not folded in yet: the measured decide folds that day's decisions in, as the
        # daily run folds the day before's, then reads the state (outside the clock: its build).
        run_step("decision_state", url=url, through=str(STATE_THROUGH))
        say(f"{kind}: decisions (1 process)")
        decide = run_step("decide", url=url)
        table.add(kind, "decisions", decide["rows"], decide["seconds"], "", None, "", measured=decide)
        total = ingest["seconds"] + stage["seconds"] + decide["seconds"]
        table.add(kind, "ingest+staging+decisions", decide["rows"], total, "", None,
                  "< 30 s at 1 M (PostgreSQL)")

        if history_days:
            history_comparison(kind, folder, work, table, url, tag, history_days)

        if workers:
            say(f"{kind}: decisions split in 2 parts on 2 worker processes at once")
            parts = run_step("plan", url=url, parts=2)["parts"]
            # The workers decide D as its first run does (a failed part rolls back): without the
            # 1-process run's rows, which each part would otherwise delete inside the clock.
            cleared = run_step("clear_decisions", url=url)
            say(f"  the 1-process run's {cleared['rows']:,} decisions of D deleted first "
                f"({cleared['seconds']:.1f} s, not in the figure)")
            _, results = run_concurrently("decide", [{"url": url, "part": p} for p in parts])
            rows = sum(r["rows"] for r in results)
            # from the first part's start to the last part's end, start-up and imports excluded
            seconds = max(r["end"] for r in results) - min(r["start"] for r in results)
            share = Share.of_processes([r["readings"] for r in results])
            table.add(kind, "decisions, 2 workers", rows, seconds, "decisions, 1 process",
                      decide["seconds"], "speed-up = 1/ratio", share=share,
                      measured={"cpu": share.ours, "profile": [r["profile"] for r in results]})

        outbox = str(work / f"outbox-{tag}")
        for step in extra_steps:
            say(f"{kind}: {step}")
            if step == "mail":
                sessions = limits["mail_sessions"]
                with smtp_sink() as (port, sink_cpu):
                    args = dict(url=url, work=outbox, port=port, limit=limits["mail"],
                                sessions=sessions)
                    before = sink_cpu()
                    r = run_step("mail", **args)
                    r["sink_cpu"], before = sink_cpu() - before, sink_cpu()
                    b = run_step("mail_baseline", **args)
                    b["sink_cpu"] = sink_cpu() - before
                table.add(kind, mail_row(r, b, sessions), r["rows"], r["per_message"] * r["rows"],
                          b["what"], b["seconds"], f"100k < 180 s: {r['per_message'] * 1e5:.0f} s",
                          measured=r)
            elif step == "letters":
                args = dict(url=url, work=outbox, limit=limits["letters"])
                r = run_step("letters", **args)
                b = run_step("letters_baseline", **args)
                table.add(kind, f"lawyer letters ({r['workers']} processes)", r["rows"], r["seconds"],
                          b["what"], b["per_letter"] * r["rows"],
                          f"10k < 120 s: {r['per_letter'] * 1e4:.0f} s", measured=r)
            else:
                r = run_step(step, url=url, work=outbox)
                table.add(kind, step.replace("_", " "), r["rows"], r["seconds"], "", None, "",
                          measured=r)
    finally:
        drop_database(kind, url, tag, work)


def pictures(table: Table, work: Path, stem: str) -> str:
    """The cores' time of every step as a chart and, with --profile, each row's profile (a
    chart by area and a table of functions); the markdown that shows them."""
    out = []
    if table.shares:
        cores = cpu_share.chart(table.shares, work / f"{stem}-cores.png",
                                "Where the cores' time went during each step")
        out.append(f"\n![the cores' time during each step]({cores.name})\n")
    if table.profiles:
        profiles = [(label, sampled_profile.Summary.read_all(raws)) for label, raws in table.profiles]
        chart = sampled_profile.chart(profiles, work / f"{stem}-profile.png",
                                      "Our CPU by area of the code (py-spy)")
        if chart:
            out.append(f"\n![our CPU by area]({chart.name})\n")
        out += ["\n" + summary.markdown(label) for label, summary in profiles]
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=50_000, help="accounts in the extract")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", default="sqlite,postgresql", help="comma list: sqlite,postgresql")
    parser.add_argument("--work", type=Path, default=REPO / "var" / "bench")
    parser.add_argument("--steps", default="mail,letters,credit_file,report",
                        help="steps after decisions (comma list; empty for none)")
    parser.add_argument("--no-workers", action="store_true", help="skip the 1-vs-2 workers run")
    parser.add_argument("--mail-limit", type=int, default=1000, help="emails sent to the SMTP sink")
    parser.add_argument("--mail-sessions", type=int, default=3,
                        help="SMTP connections (one process each) the mail and its baseline use")
    parser.add_argument("--letters-limit", type=int, default=300, help="lawyer letters drawn")
    parser.add_argument("--history-days", type=int, default=0,
                        help="then decide again after this many more days of history (e.g. 357: a year)")
    parser.add_argument("--profile", action="store_true",
                        help="sample every step's Python with py-spy (about 1%% of a core) and write"
                             " the profiles by area and function beside the table")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.profile:
        global PROFILE_DIR
        PROFILE_DIR = args.work / f"profile-{args.accounts}"
        shutil.rmtree(PROFILE_DIR, ignore_errors=True)
    say(f"benchmark of one cycle date with ~{args.accounts:,} accounts on {machine()}; "
        f"load average {os.getloadavg()[0]:.1f}")
    folder = landing_for(args.work, args.accounts, args.seed)
    table = Table()
    extra = [s for s in args.steps.split(",") if s]
    for kind in args.db.split(","):
        bench_database(kind, folder, args.work, table, workers=not args.no_workers and kind == "postgresql",
                       extra_steps=extra,
                       limits={"mail": args.mail_limit, "letters": args.letters_limit,
                               "mail_sessions": args.mail_sessions},
                       history_days=args.history_days)
    report = (f"Accounts: ~{args.accounts:,} (seed {args.seed}), cycle date {D}; machine: {machine()};"
              f" load average at the end {os.getloadavg()[0]:.1f}\n\n"
              + table.markdown() + "\n" + pictures(table, args.work, f"last-{args.accounts}"))
    out = args.work / f"last-{args.accounts}.md"
    out.write_text(report, encoding="utf-8")
    print()
    print(table.text())
    print(f"\n(markdown table, the cores' chart and any profiles written to {out} and beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
