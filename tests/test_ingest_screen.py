"""The vectorised screen (arrears.ingest.screen) and the row functions (validate.py) agree:

- any row the screen passes, the row function accepts, with the same clean values (Hypothesis,
  rows mixing good values, values with blanks around them, other scripts' digits, limits, junk);
  so any row the row function rejects, the screen does not pass;
- the same landing folder ingested by the screen (PostgreSQL, CsvFile.columns) and by the row
  path (SQLite always reads row by row) leaves the same extract, the same quarantine (file, line,
  reason, raw) and the same counts, including rows of another width, blank lines, duplicates
  and a file that must fall back to the row path (a quoted value).
"""
from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from arrears.ingest import ingest_delivery
from arrears.ingest import screen
from arrears.ingest import validate as v
from arrears.ingest.read import CsvFile
from arrears.model import CHANNELS, CUSTOMER_CLASSES, LANGUAGES, PROTECTIONS

D = date(2026, 11, 16)
ACCOUNT_HEADER = ["account_id", "holder_name", "customer_class", "service_address", "email",
                  "mobile", "language", "protections", "opt_out", "wechat_openid", "app_user_id"]
BILL_HEADER = ["bill_id", "account_id", "bill_period", "amount_due", "due_date", "note"]

# Values as CsvFile.columns can hand them over: no comma, quote, NUL or line break.
JUNK = st.text(st.characters(blacklist_characters=',"\x00\r\n', blacklist_categories=("Cs",)),
               max_size=12)
BLANKS = st.sampled_from([" ", "\t", "\u3000", "\xa0", "\x1c", "\u2028", "\x0b", "\x85"])


def padded(values):
    """A value, sometimes with blanks strip() removes around it."""
    return st.one_of(values, st.builds(lambda b, x, a: b + x + a, BLANKS, values, BLANKS),
                     st.builds(lambda b, x: b + x, BLANKS, values))


def odd(good, *near):
    """A value that is not plainly good: with blanks around it, junk, a blank or a near miss."""
    return st.one_of(padded(good), JUNK, st.just(""), *near)


IDS = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
NEAR_IDS = st.one_of(st.from_regex(r"\A[A-Za-z0-9]{65,70}\Z"), st.sampled_from(["A B", "é1", "x=1"]))
AMOUNTS = st.from_regex(r"\A\+?0{0,3}[1-9][0-9]{0,11}(\.[0-9]{1,2})?\Z")
NEAR_AMOUNTS = st.one_of(st.from_regex(r"\A[+-]?0*[0-9]{1,14}(\.[0-9]{0,3})?\Z"), st.sampled_from(
    ["1e30", "NaN", ".5", "5.", "0", "-0.00", "+0.01", "１２.00", "999999999999.99", "1000000000000",
     "0000000000000012.50", "1,234.56", "-5"]))
DATES = st.dates().map(date.isoformat)
NEAR_DATES = st.one_of(st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z"), st.sampled_from(
    ["2024-02-29", "2026-02-29", "2026-02-30", "2026-04-31", "0000-01-01", "0001-01-01",
     "9999-12-31", "2026-W45-1", "２０２６-11-01", "2026-1-05", "2026-11-01T00:00"]))
MOBILES = st.one_of(st.from_regex(r"\A(\+?86)?1[3-9][0-9]{9}\Z"), st.from_regex(r"\A\+[1-9][0-9]{7,14}\Z"))
NEAR_MOBILES = st.one_of(st.from_regex(r"\A\+?[0-9]{5,17}\Z"), st.sampled_from(
    ["139-1234-5678", "139 1234 5678", "１３９12345678", "+86 13912345678", "1391234567٣",
     "12912345678", "+0123456789"]))
EMAILS = st.emails().map(str)
NEAR_EMAILS = st.sampled_from(["a@b", "a b@c.cn", "@x.cn", "x@y..cn", "é@x.cn", "x@" + "y" * 260 + ".cn"])


def pair(good, *near):
    return good, odd(good, *near)


def enum_lists(allowed):
    return st.lists(st.sampled_from(allowed), max_size=len(allowed), unique=True).map(
        lambda items: ";".join(sorted(items)))


def near_lists(allowed):
    items = st.lists(st.sampled_from([*allowed, "bogus", " " + allowed[0], ""]), max_size=4)
    return items.map(";".join)


ACCOUNT_VALUES = {
    "account_id": pair(IDS, NEAR_IDS),
    "holder_name": pair(st.sampled_from(["王伟", "Mary Smith", "名" * 5, "=1+2", "x" * 4096]),
                          st.sampled_from(["x" * 4097, "名 ", " "])),
    "customer_class": pair(st.sampled_from(CUSTOMER_CLASSES), st.sampled_from(["industrial", "Residential"])),
    "service_address": pair(st.just("北京市朝阳区人民路1号"), st.just("路" * 4097)),
    "email": pair(EMAILS, NEAR_EMAILS), "mobile": pair(MOBILES, NEAR_MOBILES),
    "language": pair(st.sampled_from(LANGUAGES), st.sampled_from(["fr", "zh-cn"])),
    "protections": pair(enum_lists(PROTECTIONS), near_lists(PROTECTIONS)),
    "opt_out": pair(enum_lists(CHANNELS), near_lists(CHANNELS)),
    "wechat_openid": pair(IDS, NEAR_IDS), "app_user_id": pair(IDS, NEAR_IDS),
}
KNOWN_ACCOUNTS = ["A1", "A2", "3100000001"]
BILL_VALUES = {
    "bill_id": pair(IDS, NEAR_IDS),
    "account_id": pair(st.sampled_from(KNOWN_ACCOUNTS), IDS),
    "bill_period": pair(st.from_regex(r"\A[0-9]{4}-(0[1-9]|1[0-2])\Z"),
                          st.sampled_from(["２０２６-10", "2026-13", "2026-1", "2026-00"])),
    "amount_due": pair(AMOUNTS, NEAR_AMOUNTS), "due_date": pair(DATES, NEAR_DATES),
    "note": pair(st.just(""), st.just("x" * 4097)),
}


@st.composite
def rows_of(draw, values: dict, header: list[str]) -> list[dict]:
    """Good rows in which now and then one or two values are odd, so each rule's edges are
    tried beside good values (a row with many odd values is bad for many reasons at once)."""
    rows = []
    for _ in range(draw(st.integers(1, 20))):
        odd_columns = draw(st.lists(st.sampled_from(header), max_size=2))
        rows.append({c: draw(values[c][1] if c in odd_columns else values[c][0]) for c in header})
    return rows


def as_table(rows: list[dict], header: list[str]) -> pa.Table:
    return pa.table({f"c{i}": pa.array([r[c] for r in rows], pa.string())
                     for i, c in enumerate(header)})


def row_function(row: dict, header: list[str], clean):
    """What the row path makes of one row: its record, or None for a bad row."""
    fields = [row[c] for c in header]
    try:
        v.check_fields(header, fields)
        return clean(dict(zip(header, fields)))
    except v.RowError:
        return None


@settings(max_examples=150, deadline=None)
@given(data=st.data(), header=st.permutations(ACCOUNT_HEADER))
def test_a_row_the_screen_passes_is_one_account_row_accepts_as_the_same_values(data, header):
    header = [c for c in header if c in v.REQUIRED_COLUMNS["accounts.csv"] or data.draw(st.booleans())]
    rows = data.draw(rows_of(ACCOUNT_VALUES, header))
    screened = screen.accounts(as_table(rows, header), header)
    passes = screened.passes.to_pylist()
    for i, row in enumerate(rows):
        record = row_function(row, header, v.account_row)
        if passes[i]:
            assert record is not None, row
            assert {c: screened.records[c][i].as_py() for c in record} == record, row
        if record is None:
            assert not passes[i], row


@settings(max_examples=150, deadline=None)
@given(data=st.data(), header=st.permutations(BILL_HEADER))
def test_a_row_the_screen_passes_is_one_bill_row_accepts_as_the_same_values(data, header):
    rows = data.draw(rows_of(BILL_VALUES, header))
    screened = screen.bills(as_table(rows, header), header, pa.array(KNOWN_ACCOUNTS))
    passes = screened.passes.to_pylist()
    for i, row in enumerate(rows):
        record = row_function(row, header, lambda r: v.bill_row(r, set(KNOWN_ACCOUNTS)))
        if passes[i]:
            assert record is not None, row
            assert {c: screened.records[c][i].as_py() for c in record} == record, row
        if record is None:
            assert not passes[i], row


def test_the_screen_passes_the_plain_rows_of_a_real_extract():
    """Not a rule (the row function decides the rest), but the point of the screen: an
    ordinary row never costs a Python call."""
    rows = [{"account_id": "3100000001", "holder_name": "严磊", "customer_class": "residential",
             "service_address": "浙江省杭州市西湖区胜利路274号", "email": "user1@example.com",
             "mobile": "19556942521", "language": "zh-CN", "protections": "", "opt_out": "",
             "wechat_openid": "", "app_user_id": ""}]
    assert screen.accounts(as_table(rows, ACCOUNT_HEADER), ACCOUNT_HEADER).passes.to_pylist() == [True]
    bills = [{"bill_id": "B000000010", "account_id": "3100000001", "bill_period": "2026-10",
              "amount_due": "240.58", "due_date": "2026-11-13", "note": ""}]
    assert screen.bills(as_table(bills, BILL_HEADER), BILL_HEADER,
                        pa.array(KNOWN_ACCOUNTS)).passes.to_pylist() == [True]


# --------------------------------------------------------------------------- whole folders

def _write(path: Path, header: list[str], lines: list[str], quote_all: bool = False) -> None:
    if quote_all:  # a quoted value: the file must go the row path
        with path.open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(
                [header] + [line.split(",") for line in lines])
        return
    path.write_text("\n".join([",".join(header), *lines]) + "\n", encoding="utf-8")


def _state(url: str) -> dict:
    from arrears.db import connect
    engine = connect(url)
    with engine.connect() as conn:
        return {
            "accounts": sorted(tuple(map(str, r)) for r in conn.execute(text(
                "SELECT * FROM extract_accounts WHERE cycle_date = :d"), {"d": D})),
            "bills": sorted(tuple(map(str, r)) for r in conn.execute(text(
                "SELECT * FROM extract_bills WHERE cycle_date = :d"), {"d": D})),
            "quarantine": sorted(tuple(map(str, r)) for r in conn.execute(text(
                "SELECT file, line, reason, raw FROM quarantine WHERE cycle_date = :d"), {"d": D})),
        }


ACCOUNT_LINES = [
    "A1,王伟,residential,北京市朝阳区人民路1号,w@example.com,139 0000 0001,zh-CN,,",
    "A2,Mary,non_residential,,bad-email,13900000002,en,medical_device;low_income,sms",
    "A3,李娜,residential,,,+4915112345678,,low_income,",
    "A1,重复,residential,,,,,,",                      # duplicate: the first row wins
    " A4 ,空格,residential,,,,,,",                    # blanks around: the row function decides
    "A5,,residential,,,,,,",                          # blank name
    "A6,名字,industrial,,,,,,",                       # bad class
    "A7,名字,residential,,,,,,,surplus",              # a field too many
    "A8,名字,residential",                            # padded with blanks
    "",                                               # a blank line, no record
    "A9,名字,residential,,,,,,",
    "A9,名字,residential,,,,,,",                      # a later duplicate of a good row
    "X" * 65 + ",名字,residential,,,,,,",            # id too long
]
BILL_LINES = [
    "B1,A1,2026-09,100.00,2026-10-01",
    "B2,A2,2026-10,1e30,2026-11-01",
    "B3,A4,2026-10,5,2026-11-01",                     # A4 was loaded by the row function
    "B4,NOPE,2026-10,5,2026-11-01",
    "B5,A3,2026-10,5,2026-02-30",
    "B6,A3,2026-10,5,2024-02-29",                     # a leap day: the row function decides
    "B1,A3,2026-10,5,2026-11-01",                     # duplicate bill_id
    "B7,A3,2026-10, 12.5 ,2026-11-01",
    "B8,A3,2026-10,1,234.56,2026-11-01",
    "B9,A1,2026-1,5,2026-11-01",
]


@pytest.mark.postgres
@pytest.mark.parametrize("quoted", [False, True], ids=["screened", "quoted-file-row-path"])
def test_the_screen_and_the_row_path_leave_the_same_extract_and_quarantine(tmp_path, quoted,
                                                                          new_database):
    folder = tmp_path / "landing"
    folder.mkdir()
    _write(folder / "accounts.csv", ACCOUNT_HEADER[:9], ACCOUNT_LINES, quote_all=quoted)
    _write(folder / "open_items.csv", BILL_HEADER[:5], BILL_LINES)
    (folder / "payments.csv").write_text(
        "payment_id,account_id,bill_id,amount,paid_at\nP1,A1,B1,1.00,2026-11-15T10:00:00+08:00\n"
        "P2,A3,B1,1.00,2026-11-15T10:00:00+08:00\n", encoding="utf-8")
    assert (CsvFile(folder / "accounts.csv", v.REQUIRED_COLUMNS["accounts.csv"]).columns() is None) == quoted
    results, states = [], []
    for kind in ("sqlite", "postgresql"):
        (tmp_path / kind).mkdir()
        with new_database(kind, tmp_path / kind) as url:
            from arrears.db import connect
            result = ingest_delivery(connect(url), folder, D)
            results.append((result.rows, result.quarantined, result.contact_gaps))
            states.append(_state(url))
    assert results[0] == results[1]
    assert states[0] == states[1]
    # Quoted, the blank line is a record of one empty value: a row with a blank account_id.
    assert results[1][0]["accounts.csv"] == 6 and results[1][1]["accounts.csv"] == 6 + quoted


@pytest.mark.postgres
def test_a_redelivery_through_the_screen_replaces_the_dates_partition(tmp_path, new_database):
    """D delivered twice on PostgreSQL: D's partition is replaced whole, another date's stays."""
    from arrears.db import connect
    folder = tmp_path / "landing"
    folder.mkdir()
    _write(folder / "accounts.csv", ACCOUNT_HEADER[:9], ACCOUNT_LINES)
    _write(folder / "open_items.csv", BILL_HEADER[:5], BILL_LINES)
    with new_database("postgresql", tmp_path) as url:
        engine = connect(url)
        ingest_delivery(engine, folder, D)
        ingest_delivery(engine, folder, date(2026, 11, 17))
        _write(folder / "accounts.csv", ACCOUNT_HEADER[:9], ACCOUNT_LINES[:3])
        ingest_delivery(engine, folder, D)
        with engine.connect() as conn:
            counts = dict(conn.execute(text(
                "SELECT cycle_date, COUNT(*) FROM extract_accounts GROUP BY cycle_date")).all())
            partitions = {r[0] for r in conn.execute(text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'extract_accounts'::regclass"))}  # this schema's only
        assert counts == {D: 3, date(2026, 11, 17): 6}
        assert partitions == {"extract_accounts_default", "extract_accounts_20261116",
                              "extract_accounts_20261117"}
