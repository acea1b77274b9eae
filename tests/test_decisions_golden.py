"""The decisions of a synthetic book over several cycle dates, every column, equal a reference
recorded before the per-account loop was made faster (issue 13).

The book (``devtools.datagen``: bills, payments, every case event and hold, plans, protections,
opt-outs, bad addresses) runs day after day through ingest, staging, decide, disconnection,
queue and dispatch (the channels' file transports), so later dates decide from a real record:
messages sent, notices served and cancelled, contact gaps, earlier stages and letters. Any change
to a decision (a reason code, an action's order, a fee, a date) fails this test on both databases.

To record the reference again after a change that is meant to change decisions (bump the policy
version then): ``ARREARS_WRITE_GOLDEN=1 .venv/bin/python -m pytest tests/test_decisions_golden.py``.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import text

from cycle_steps import context, run_cycle, use_database
from devtools.datagen import generate

FIRST = date(2026, 11, 12)  # a Thursday: the dates cross a weekend and reach December (winter)
DAYS = 21
CUSTOMERS = 160
GOLDEN = Path(__file__).parent / "golden" / "decisions.csv.gz"  # gzip -dc to read it
COLUMNS = ("cycle_date", "account_id", "stage", "stage_entered_on", "dpd", "outstanding_fen",
           "late_fee_fen", "actions", "holds", "message_kinds", "reasons", "policy_version",
           "replay", "segment", "late_fee_waived", "experiment_id", "arm",
           "disconnection_earliest", "notice_pending", "serve_in_person")


def _decided(engine) -> list[list[str]]:
    """Every decision with its bills' (bill, days, fee) and its action rows, as text."""
    with engine.connect() as conn:
        bills: dict[tuple, list[str]] = {}
        for day, account, bill, days, fee in conn.execute(text(
                "SELECT cycle_date, account_id, bill_id, days_overdue, late_fee_fen"
                " FROM decision_bills ORDER BY cycle_date, account_id, bill_id")):
            bills.setdefault((str(day)[:10], account), []).append(f"{bill}:{days}:{fee}")
        actions: dict[tuple, list[str]] = {}
        for day, account, action in conn.execute(text(
                "SELECT cycle_date, account_id, action FROM decision_actions"
                " ORDER BY cycle_date, account_id, action")):
            actions.setdefault((str(day)[:10], account), []).append(action)
        out = []
        for row in conn.execute(text(f"SELECT {', '.join(COLUMNS)} FROM decisions")):
            values = ["" if v is None else str(v)[:10] if i in (0, 3, 17) else str(v)
                      for i, v in enumerate(row)]
            key = (values[0], values[1])
            out.append([*values, ";".join(bills.get(key, [])), ";".join(actions.get(key, []))])
    return sorted(out)


def _as_csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*COLUMNS, "bills", "action_rows"])
    writer.writerows(rows)
    return buffer.getvalue()


def test_decisions_over_three_weeks_equal_the_reference(tmp_path, monkeypatch, engine, db_url):
    from arrears.disconnection.tasks import cycle_disconnection
    land, outbox = tmp_path / "landing", tmp_path / "outbox"
    generate(land, FIRST, DAYS, CUSTOMERS, seed=11)
    use_database(monkeypatch, db_url, land, outbox)
    for n in range(DAYS):
        day = FIRST + timedelta(days=n)
        run_cycle(day, deliver=False)
        cycle_disconnection(context(day, task_id="disconnection"))
        from arrears.delivery import tasks as delivery
        delivery.queue(context(day, task_id="queue_messages"))
        delivery.dispatch_cycle(context(day, task_id="dispatch_messages"))
    got = _as_csv(_decided(engine))
    if os.environ.get("ARREARS_WRITE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_bytes(gzip.compress(got.encode(), mtime=0))
    expected = gzip.decompress(GOLDEN.read_bytes()).decode()
    assert got.count("\n") > 1000  # the scenario still decides a book, not a handful
    if got != expected:
        want, have = expected.splitlines(), got.splitlines()
        diff = [(w, h) for w, h in zip(want, have) if w != h][:3]
        raise AssertionError(f"{len(want)} reference rows, {len(have)} now; first differences:\n"
                             + "\n".join(f"- {w}\n+ {h}" for w, h in diff))
