"""Decisions split into account ranges (the mapped decide tasks) equal one decision over all."""
from __future__ import annotations

import itertools
from datetime import date

import pytest
from sqlalchemy import text

from arrears.cycle import decide as ds
from arrears.cycle.run import CycleRun
from devtools.datagen import generate
from arrears.ingest import ingest_delivery
from factories import CALENDAR, POLICY, landing

D = date(2026, 11, 16)


def decisions(engine) -> list[tuple]:
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(
            "SELECT account_id, stage, dpd, outstanding_fen, late_fee_fen, actions, holds, reasons,"
            " replay FROM decisions WHERE cycle_date = :d"), {"d": D})]
        bills = [tuple(r) for r in conn.execute(text(
            "SELECT bill_id, days_overdue, late_fee_fen FROM decision_bills WHERE cycle_date = :d"),
            {"d": D})]
    return sorted(rows) + sorted(bills)


def test_parts_cover_every_account_once_and_decide_the_same(engine, tmp_path):
    generate(tmp_path, D, 1, 400, seed=3)
    ingest_delivery(engine, tmp_path / D.isoformat(), D)
    ds.stage_bills(engine, D)
    whole = ds.decide_cycle(engine, CycleRun(D), POLICY, CALENDAR)
    expected = decisions(engine)

    parts = ds.plan_parts(engine, D, size=70)
    assert len(parts) == -(-whole.accounts // 70) > 2
    assert parts[0].lo == "" and parts[-1].hi is None
    assert all(a.hi == b.lo for a, b in zip(parts, parts[1:]))
    with engine.begin() as conn:  # what a part does not own must still be replaced by its owner
        conn.execute(text("UPDATE decisions SET stage = 'stale' WHERE cycle_date = :d"), {"d": D})
    counts = [ds.decide_cycle(engine, CycleRun(D), POLICY, CALENDAR, part).accounts
              for part in reversed(parts)]
    assert sum(counts) == whole.accounts and max(counts) <= 70
    assert decisions(engine) == expected


def test_a_part_rerun_leaves_the_other_parts_alone(engine, tmp_path):
    accounts = [[f"A{i}", "王伟", "residential", "", "", "", "", "", ""] for i in range(1, 7)]
    bills = [[f"B{i}", f"A{i}", "2026-09", "100.00", "2026-10-01"] for i in range(1, 7)]
    ingest_delivery(engine, landing(tmp_path / "d", accounts, bills), D)
    ds.stage_bills(engine, D)
    first, second = ds.plan_parts(engine, D, size=3)
    assert (first.lo, first.hi, second.lo, second.hi) == ("", "A4", "A4", None)
    ds.decide_cycle(engine, CycleRun(D, run_id="one"), POLICY, CALENDAR, first)
    ds.decide_cycle(engine, CycleRun(D, run_id="two"), POLICY, CALENDAR, second)
    ds.decide_cycle(engine, CycleRun(D, run_id="three"), POLICY, CALENDAR, first)
    with engine.connect() as conn:
        runs = dict(conn.execute(text("SELECT account_id, run_id FROM decisions")).all())
    assert runs == {"A1": "three", "A2": "three", "A3": "three",
                    "A4": "two", "A5": "two", "A6": "two"}


def test_a_decide_that_fails_midway_leaves_the_earlier_run_whole(engine, tmp_path, monkeypatch):
    # The part's DELETE (and any COPY batch already sent) is one transaction with the loop: a
    # failure in the loop leaves the earlier run's rows as they were.
    generate(tmp_path, D, 1, 400, seed=3)
    ingest_delivery(engine, tmp_path / D.isoformat(), D)
    ds.stage_bills(engine, D)
    ds.decide_cycle(engine, CycleRun(D, run_id="one"), POLICY, CALENDAR)
    before = decisions(engine)
    decided, real = itertools.count(1), ds.decide_account

    def failing(*args):
        if next(decided) == 150:  # rows of 149 accounts already sent
            raise RuntimeError("the policy failed")
        return real(*args)

    monkeypatch.setattr(ds, "decide_account", failing)
    with pytest.raises(RuntimeError, match="the policy failed"):
        ds.decide_cycle(engine, CycleRun(D, run_id="two"), POLICY, CALENDAR)
    assert decisions(engine) == before
    with engine.connect() as conn:
        assert {r[0] for r in conn.execute(text("SELECT DISTINCT run_id FROM decisions"))} == {"one"}
        assert conn.execute(text("SELECT COUNT(*) FROM decision_actions")).scalar_one() > 0
