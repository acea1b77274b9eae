"""Negative credit information leaves bureau output five years after the default ended
(CONTRACT §9): a replay of D written after A2 left the extract (its default ended on D2) keeps
A2's record through D2 + 5 years and leaves it out the day after; A3, still in arrears, stays.
Both databases."""
from __future__ import annotations

import csv
import io
from datetime import date

import batches_scenario as scenario
from batches_scenario import ACCOUNTS, BILLS, D
from factories import landing

D2 = date(2026, 11, 17)


def _write(engine, tmp_path, as_of, name):
    from arrears.batches.bureau import load_layout, verify, write_credit_report
    from arrears.cycle.run import CycleRun
    from arrears.outbox_files import run_folder
    replay = CycleRun(D, run_id="backfill__2026-11-16", run_type="backfill")
    folder = run_folder(tmp_path / name, replay)
    result = write_credit_report(engine, folder, D, replay=True, as_of=as_of)
    batch = tmp_path / name / D.isoformat() / "replays" / "backfill__2026-11-16" / "credit_report"
    parsed = verify((batch / "ARREARS_M2_20261116.txt").read_bytes(), load_layout())
    manifest = list(csv.DictReader(io.StringIO((batch / "manifest.csv").read_text())))
    accounts = [d["consumer_account_number"] for d in parsed.details]
    assert accounts == [r["account_id"] for r in manifest]
    return result.records, accounts


def test_a_default_that_ended_leaves_bureau_output_after_five_years(engine, tmp_path):
    from arrears.ingest import ingest_delivery
    scenario.build(engine, tmp_path)
    # While every reported default runs, no date takes a record out.
    assert _write(engine, tmp_path, date(2040, 1, 1), "running") == (2, ["A2", "A3"])
    # D2: A2 paid and left the extract; A3 is still in arrears.
    folder = landing(tmp_path / "landing" / D2.isoformat(),
                     [a for a in ACCOUNTS if a[0] != "A2"], [b for b in BILLS if b[1] != "A2"],
                     [], [])
    ingest_delivery(engine, folder, D2)
    assert _write(engine, tmp_path, date(2031, 11, 17), "last_day") == (2, ["A2", "A3"])
    assert _write(engine, tmp_path, date(2031, 11, 18), "day_after") == (1, ["A3"])
