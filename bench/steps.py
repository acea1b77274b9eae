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
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from sqlalchemy import text  # noqa: E402

from arrears.cycle import decide as ds  # noqa: E402
from arrears.cycle import state  # noqa: E402
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


@step
def pii_prepare(url: str) -> dict:
    """What the ingest task adds once per delivery: D's personal data read and stored as the log
    masker's digests (arrears.audit.pii.prepare)."""
    from arrears.audit import pii
    engine = make_engine(url)
    with Clock() as clock:
        digests = pii.prepare(engine, D)
    return {"rows": digests, "seconds": clock.seconds}


@step
def pii_start_up(url: str) -> dict:
    """What the plugin's listener costs a task at start-up: the stored digests of D's personal
    data read and made the log masker (arrears.audit.pii), and how many values Airflow's own
    masker was handed."""
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    from arrears.audit import pii
    engine = make_engine(url)
    before = len(_secrets_masker().patterns)
    with Clock() as clock:
        known = pii.protect_task_logs(engine, D)
    with Clock() as line:
        for _ in range(1000):
            pii.mask_text("decision for account A123 holder 王伟 at 北京市朝阳区人民路1号: email", pii._FILTER.known)
    return {"rows": known, "seconds": clock.seconds, "airflow_masker": len(_secrets_masker().patterns) - before,
            "line_ms": line.seconds}  # seconds for 1,000 lines = ms a line


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
    state.bring_up_to(engine, D - timedelta(days=1))  # as the DAG's plan_decisions, before the parts
    planned = ds.plan_parts(engine, D, size=math.ceil(accounts / parts))
    return {"rows": accounts, "seconds": 0, "parts": [[p.lo, p.hi] for p in planned]}


@step
def clear_decisions(url: str) -> dict:
    """D's decisions, their actions and bills deleted, and the tables vacuumed: the state a
    first run of D finds."""
    engine = make_engine(url)
    with Clock() as clock:
        with engine.begin() as conn:
            rows = conn.execute(text("DELETE FROM decisions WHERE cycle_date = :d"), {"d": D}).rowcount
            for table in ("decision_actions", "decision_bills"):
                conn.execute(text(f"DELETE FROM {table} WHERE cycle_date = :d"), {"d": D})
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for table in ("decisions", "decision_actions", "decision_bills"):
                    conn.execute(text(f"VACUUM ANALYZE {table}"))
    return {"rows": rows, "seconds": clock.seconds}


@step
def decide(url: str, part: list | None = None) -> dict:
    engine = make_engine(url)
    policy = load_policy()
    calendar = BusinessCalendar.for_policy(policy)
    rng = ds.AccountRange(*part) if part else ds.EVERY_ACCOUNT
    calendar.earliest_disconnection(D, 7)  # load the holiday tables before the clock starts
    start = time.time()
    with Clock() as clock:
        with Clock() as fold:  # decide_cycle does it first; timed apart here to show its share
            state.bring_up_to(engine, D - timedelta(days=1))
        result = ds.decide_cycle(engine, CycleRun(D, run_id="bench"), policy, calendar, rng)
    return {"rows": result.accounts, "seconds": clock.seconds, "by_stage": result.by_stage,
            "start": start, "end": time.time(), "history": result.history,
            "fold_seconds": fold.seconds}


# --------------------------------------------------------------------------- history

@step
def history(url: str) -> dict:
    """An earlier cycle for every account of D: escalation with a credit pre-notice 8 days
    before D, so decisions read history and some accounts are due for the credit report; and
    a quiet cycle the day after it."""
    engine = make_engine(url)
    earlier = D - timedelta(days=8)
    with Clock() as clock, engine.begin() as conn:
        rows = conn.execute(text(
            "INSERT INTO decisions (cycle_date, account_id, stage, stage_entered_on, dpd,"
            " outstanding_fen, late_fee_fen, actions, holds, message_kinds, reasons,"
            " policy_version, replay, run_id)"
            " SELECT :e, account_id, 'escalation', :e, 40, 0, 0, 'email;credit_prenotice', '',"
            " 'credit_prenotice', 'bench', 'bench', 0, 'bench' FROM extract_accounts"
            " WHERE cycle_date = :d"), {"d": D, "e": earlier}).rowcount
        conn.execute(text(
            "INSERT INTO decision_actions (cycle_date, account_id, action)"
            " SELECT cycle_date, account_id, a.action FROM decisions,"
            " (SELECT 'email' AS action UNION ALL SELECT 'credit_prenotice') a"
            " WHERE cycle_date = :e"), {"e": earlier})
        # The next day, a quiet one: every account decided again, same spell, nothing done. The
        # measured decide folds this day into the decision state, as the daily run folds the
        # day before's (cycle_bench.STATE_THROUGH).
        conn.execute(text(
            "INSERT INTO decisions (cycle_date, account_id, stage, stage_entered_on, dpd,"
            " outstanding_fen, late_fee_fen, actions, holds, message_kinds, reasons,"
            " policy_version, replay, run_id)"
            " SELECT :q, account_id, stage, stage_entered_on, dpd + 1, outstanding_fen,"
            " late_fee_fen, '', holds, '', reasons, policy_version, 0, run_id FROM decisions"
            " WHERE cycle_date = :e"), {"e": earlier, "q": earlier + timedelta(days=1)})
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE decisions"))  # as autovacuum would have, long before D
            conn.execute(text("ANALYZE decision_actions"))
    return {"rows": rows, "seconds": clock.seconds}


@step
def older_history(url: str, days: int) -> dict:
    """A book that has been collected for ``days`` more days: every account of D decided on
    each day before the earlier cycle of ``history`` (escalation, a lawyer letter every 30th
    day), so the history read has a year of rows per account instead of one."""
    engine = make_engine(url)
    rows = 0
    with Clock() as clock:
        for back in range(9, 9 + days):
            day = D - timedelta(days=back)
            with engine.begin() as conn:  # a day a transaction: the server's memory stays flat
                rows += conn.execute(text(
                    "INSERT INTO decisions (cycle_date, account_id, stage, stage_entered_on, dpd,"
                    " outstanding_fen, late_fee_fen, actions, holds, message_kinds, reasons,"
                    " policy_version, replay, run_id)"
                    " SELECT :e, account_id, 'escalation', :e, 40, 0, 0, :acts, '', '', 'bench',"
                    " 'bench', 0, 'bench' FROM extract_accounts WHERE cycle_date = :d"),
                    {"d": D, "e": day, "acts": "lawyer_letter" if back % 30 == 0 else ""}).rowcount
                if back % 30 == 0:
                    conn.execute(text(
                        "INSERT INTO decision_actions (cycle_date, account_id, action)"
                        " SELECT cycle_date, account_id, 'lawyer_letter' FROM decisions"
                        " WHERE cycle_date = :e"), {"e": day})
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE decisions"))
            conn.execute(text("ANALYZE decision_actions"))
    return {"rows": rows, "seconds": clock.seconds}


@step
def decision_state(url: str, through: str | None) -> dict:
    """The per-account decision state as the real cycles would have left it on ``through``
    (rebuilt from every decision up to it, outside the measured decide), so the next decide of D
    folds in the dates after it, as the daily run does with the day before. ``through`` None: W
    set after D, so the next decide reads the full history (history.sql) instead, for reference."""
    engine = make_engine(url)
    with Clock() as clock:
        with engine.begin() as conn:
            conn.execute(text("UPDATE decision_state_through SET through = :t"),
                         {"t": D + timedelta(days=1) if through is None else None})
        if through is not None:
            state.bring_up_to(engine, date.fromisoformat(through))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT COUNT(*) FROM decision_state")).scalar_one()
    return {"rows": rows, "seconds": clock.seconds}


# --------------------------------------------------------------------------- mail

SEND_AT = datetime(2026, 11, 16, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # inside the window


def smtp_connection(port: int, sessions: int = 1):
    return SimpleNamespace(conn_id="bench_sink", host="127.0.0.1", port=port, login=None,
                           password=None, extra_dejson={"disable_ssl": True, "disable_tls": True,
                                                        "sessions": sessions})


def cpu_seconds() -> float:
    """This process's CPU time and that of its children that have ended (the session processes)."""
    import resource
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@step
def mail(url: str, work: str, port: int, limit: int, sessions: int = 1) -> dict:
    """Render and queue D's messages (outbox), then send the first ``limit`` emails to the
    local SMTP sink through the delivery module's dispatch (one SMTP session per chunk, over
    ``sessions`` connections at once)."""
    from arrears.delivery.dispatch import dispatch
    from arrears.delivery.outbox import Attempt, queue_messages
    from arrears.delivery.transports import SmsJsonlTransport, SmtpTransport, mail_domain
    engine = make_engine(url)
    conn = smtp_connection(port, sessions)
    with Clock() as queued:
        q = queue_messages(engine, CycleRun(D, run_id="bench"), load_policy(), mail_domain(conn),
                           SEND_AT)
    with engine.begin() as c:  # the bench sends a sample; the rest of the outbox is dropped
        keys = [k for (k,) in c.execute(text(
            "SELECT idem_key FROM outbox WHERE cycle_date = :d AND channel = 'email'"
            " ORDER BY idem_key"), {"d": D})]
        c.execute(text("DELETE FROM outbox WHERE cycle_date = :d AND (channel <> 'email'"
                       " OR idem_key > :last)"), {"d": D, "last": keys[min(limit, len(keys)) - 1]})
    transports = {"email": SmtpTransport(conn), "sms": SmsJsonlTransport(Path(work))}
    cpu = cpu_seconds()
    with Clock() as sent:
        result = dispatch(engine, transports, tz="Asia/Shanghai",
                          window=(dt_time(8), dt_time(21)), attempt=Attempt("bench"),
                          dates=[D], clock=lambda: SEND_AT)
    cpu = cpu_seconds() - cpu
    per_message = queued.seconds / max(1, q.queued) + sent.seconds / max(1, result.sent)
    return {"rows": result.sent, "queued": q.queued, "queue_seconds": queued.seconds,
            "send_seconds": sent.seconds, "seconds": queued.seconds + sent.seconds,
            "send_cpu": cpu, "per_message": per_message,
            "failed": result.failed + result.permanent_failure}


def _send_prebuilt(port: int, sender: str, built: list[tuple[str, bytes]]) -> None:
    import smtplib
    server = smtplib.SMTP("127.0.0.1", port)
    for address, raw in built:
        server.sendmail(sender, [address], raw)
    server.quit()


@step
def mail_baseline(url: str, work: str, port: int, limit: int, sessions: int = 1) -> dict:
    """The same emails built beforehand, then sent over ``sessions`` reused smtplib
    connections, one process each (the first of them this one)."""
    from multiprocessing import get_context

    from arrears.delivery.transports import OutboxMessage, build_email, mail_from
    engine = make_engine(url)
    with engine.connect() as c:
        rows = c.execute(text(
            "SELECT idem_key, cycle_date, account_id, channel, address, subject, body_text,"
            " body_html, message_id, queued_at FROM outbox WHERE cycle_date = :d AND"
            " channel = 'email' ORDER BY idem_key"), {"d": D}).all()[:limit]
    sender = mail_from(smtp_connection(port))
    built = [(m[4], build_email(OutboxMessage(*[str(v) for v in m]), sender).as_string()
              .replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8"))  # SMTP wants CRLF
             for m in rows]
    shares = [built[i::sessions] for i in range(sessions)]
    cpu = cpu_seconds()
    with Clock() as clock:  # fork: the other connections start with their messages already built
        others = [get_context("fork").Process(target=_send_prebuilt, args=(port, sender, share))
                  for share in shares[1:]]
        for other in others:
            other.start()
        _send_prebuilt(port, sender, shares[0])
        for other in others:
            other.join()
    what = ("pre-built, 1 SMTP connection" if sessions == 1 else
            f"pre-built, {sessions} SMTP connections ({sessions} processes)")
    return {"rows": len(built), "seconds": clock.seconds, "what": what,
            "send_cpu": cpu_seconds() - cpu, "per_message": clock.seconds / max(1, len(built))}


# --------------------------------------------------------------------------- letters

@step
def letters(url: str, work: str, limit: int) -> dict:
    """The first ``limit`` of D's lawyer letters, drawn by the batches module on every core."""
    from itertools import islice

    from arrears.batches import letters as lw
    engine = make_engine(url)
    with engine.connect() as conn:
        batch = list(islice(lw.iter_letters(conn, D), limit))
    with Clock() as clock:
        pages = sum(len(pdf) > 0 for _, pdf in lw.rendered(batch))
    return {"rows": pages, "seconds": clock.seconds, "per_letter": clock.seconds / max(1, pages),
            "workers": lw._worker_count()}


@step
def letters_baseline(url: str, work: str, limit: int) -> dict:
    """ReportLab's fastest one-page CJK letter: a few drawString calls, one core."""
    from io import BytesIO

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    from arrears.batches.letters import CJK as font
    from arrears.batches.letters import register_cjk_font
    register_cjk_font()
    n = min(limit, 300)
    with Clock() as clock:
        for i in range(n):
            out = BytesIO()
            page = canvas.Canvas(out, pagesize=A4)
            page.setFont(font, 12)
            page.drawString(72, 770, f"律师函 第{i}号")
            page.drawString(72, 740, "尊敬的王伟先生：您的户号 3100000001 欠费 1,234.56 元，违约金 12.34 元。")
            page.drawString(72, 710, "请于收到本函之日起七日内缴清，否则我方将依法追究。")
            page.showPage()
            page.save()
    return {"rows": n, "seconds": clock.seconds, "what": "ReportLab minimal letter, 1 core",
            "per_letter": clock.seconds / n}


# --------------------------------------------------------------------------- credit file, report

@step
def credit_file(url: str, work: str) -> dict:
    from arrears.batches.bureau import write_credit_report
    from arrears.outbox_files import day_folder
    engine = make_engine(url)
    with Clock() as clock:
        result = write_credit_report(engine, day_folder(work, D), D)
    return {"rows": result.records, "seconds": clock.seconds}


@step
def report(url: str, work: str) -> dict:
    from arrears.report.cycle_report import write_cycle_report
    engine = make_engine(url)
    with Clock() as clock:
        _, facts = write_cycle_report(engine, Path(work), D)
    accounts = count(engine, "SELECT COUNT(*) FROM decisions WHERE cycle_date = :d")
    return {"rows": accounts, "seconds": clock.seconds}


if __name__ == "__main__":
    import logging
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="    %(asctime)s %(message)s",
                        datefmt="%H:%M:%S")  # the modules' own progress lines
    import os

    import sampled_profile  # bench/ is this script's folder
    from cpu_share import Reading
    name, args = sys.argv[1], json.loads(sys.argv[2])
    if os.environ.get(sampled_profile.ENV):  # --profile: the step's samples, not the imports'
        sampled_profile.attach(os.getpid(), Path(os.environ[sampled_profile.ENV]), wait=True)
    before = Reading.now()
    result = STEPS[name](**args)
    # where the cores' time went while the step ran (cycle_bench.py turns it into a Share)
    result["readings"] = [before.as_dict(), Reading.now().as_dict()]
    print(json.dumps(result, default=str), flush=True)
