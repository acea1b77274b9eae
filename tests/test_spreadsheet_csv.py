"""CONTRACT §1: every CSV people open in a spreadsheet neutralises a cell that would start a
formula. The writer alone, then every CSV of a real cycle (the DAG run by `dag.test`) whose
customers' ids, names and addresses are formulas, and the quarantine export."""
from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timezone

import pytest

from arrears.spreadsheet import csv_bytes, is_safe, neutralise
from factories import landing

D = date(2026, 11, 16)


@pytest.mark.parametrize("cell, written", [
    ("=1+1", "'=1+1"), ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("-5.00", "-5.00"), ("+8613900000001", "+8613900000001"),   # plain numbers run nothing
    ("王伟", "王伟"), ("a=b", "a=b"), ("", ""), (None, None), (-3, -3),
])
def test_neutralise(cell, written):
    assert neutralise(cell) == written
    assert is_safe("" if written is None else str(written))


def test_csv_bytes_round_trip():
    body = csv_bytes(("account_id", "holder_name"), [("=A1", '=HYPERLINK("http://x","y")'), ("A2", "李娜")])
    assert list(csv.reader(io.StringIO(body.decode()))) == [
        ["account_id", "holder_name"], ["'=A1", '\'=HYPERLINK("http://x","y")'], ["A2", "李娜"]]


HOSTILE = [  # escalation with a lawyer letter and a notice; formal notice; escalation
    ["=A1", "=HYPERLINK(\"http://evil\",\"pay\")", "residential", "@北京市朝阳区1号",
     "a1@example.com", "13900000001", "zh-CN", "", ""],
    ["+A2", "-2+3+cmd|' /C calc'!A0", "residential", "\t=1+1", "a2@example.com", "13900000002", "zh-CN", "", ""],
    ["@A3", "@SUM(1)", "residential", "=1", "a3@example.com", "13900000003", "en", "", ""],
    ["-A4", "+李娜", "residential", "-上海", "a4@example.com", "13900000004", "zh-CN", "", ""],
]
BILLS = [
    ["B1", "=A1", "2026-08", "1000.00", "2026-09-01"],    # DPD 76: letter, notice, field visit
    ["B2", "+A2", "2026-10", "300.00", "2026-10-27"],     # DPD 20: call list
    ["B3", "@A3", "2026-09", "500.00", "2026-10-10"],     # DPD 37: field visit
    ["B4", "-A4", "2026-08", "800.00", "2026-09-10"],     # DPD 67: letter
    ["=B5", "=A1", "2026-10", "1,0", "2026-11-01"],       # quarantined: its raw row is a formula
]


def test_every_spreadsheet_csv_of_a_real_cycle_is_formula_safe(tmp_path, monkeypatch, dagbag):
    from airflow.utils.state import DagRunState

    from arrears.db import connect
    from arrears.ingest.quarantine import export
    land, outbox = tmp_path / "landing", tmp_path / "outbox"
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_LANDING", str(land))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(outbox))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_CONTACT_WINDOW", "00:00-24:00")
    db = {"conn_type": "sqlite", "host": str(tmp_path / "arrears.db")}
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", json.dumps(db))
    landing(land / D.isoformat(), HOSTILE, BILLS, [], [])
    run = dagbag.get_dag("arrears_collection_cycle").test(
        logical_date=datetime(D.year, D.month, D.day, 0, 30, tzinfo=timezone.utc))
    assert run.state == DagRunState.SUCCESS

    files = sorted((outbox / D.isoformat()).rglob("*.csv"))
    names = {p.relative_to(outbox / D.isoformat()).as_posix() for p in files}
    assert {"decisions.csv", "call_list.csv", "field_visits.csv", "lawyer_letters/manifest.csv",
            "disconnection/notices.csv"} <= names
    cells = {}
    for path in files:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
        unsafe = [c for row in rows for c in row if not is_safe(c)]
        assert unsafe == [], f"{path.name}: {unsafe}"
        cells[path.relative_to(outbox / D.isoformat()).as_posix()] = {c for row in rows for c in row}
    assert {"'=A1", "'+A2", "'@A3", "'-A4"} <= cells["decisions.csv"]
    assert {"'+A2", "'-2+3+cmd|' /C calc'!A0"} <= cells["call_list.csv"]
    assert {"'=A1", '\'=HYPERLINK("http://evil","pay")', "'@北京市朝阳区1号", "'@SUM(1)", "'=1"} \
        <= cells["field_visits.csv"]
    assert {"'=A1", "'-A4"} <= cells["lawyer_letters/manifest.csv"]
    # disconnection/notices.csv lists notices served (delivered) on D: checked by the loop above
    # for whatever rows it has; served-means-delivered may leave it with its header only here.

    count, body = export(connect(f"sqlite:///{db['host']}"), D)
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    assert count == 1 and rows[0] == ["cycle_date", "file", "line", "reason", "raw"]
    assert rows[1][:3] == ["2026-11-16", "open_items.csv", "6"]
    assert rows[1][4] == "'=B5,=A1,2026-10,\"1,0\",2026-11-01"
    assert all(is_safe(c) for row in rows for c in row)
