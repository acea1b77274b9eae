"""Property: whatever bytes land, ingest either loads (every data row loaded or quarantined,
none lost, none invented) or fails with the project's own IngestError, on SQLite and PostgreSQL.

Inputs are random bytes in place of a file, and random mutations of a valid extract (characters
that matter to CSV, numbers, dates and encodings inserted, lines cut, duplicated or truncated).
"""
from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from arrears.ingest import IngestError, ingest_delivery
from factories import ACCOUNT_HEADER, BILL_HEADER, EVENT_HEADER, PAYMENT_HEADER

D = date(2026, 11, 16)
FILES = {
    "accounts.csv": [ACCOUNT_HEADER,
                     ["A1", "王伟", "residential", "北京市朝阳区人民路1号", "w@example.com", "13900000001", "zh-CN", "", ""],
                     ["A2", "Mary", "non_residential", "", "", "", "en", "low_income", "sms"],
                     ["A3", "李娜", "residential", "", "", "", "", "", ""]],
    "open_items.csv": [BILL_HEADER, ["B1", "A1", "2026-09", "100.00", "2026-10-01"],
                       ["B2", "A2", "2026-10", "50.5", "2026-11-01"], ["B3", "A3", "2026-10", "7", "2026-11-02"]],
    "payments.csv": [PAYMENT_HEADER, ["P1", "A1", "B1", "20.00", "2026-11-15T10:00:00+08:00"],
                     ["P2", "A2", "", "1.00", "2026-11-14T10:00:00Z"]],
    "case_events.csv": [EVENT_HEADER, ["E1", "A1", "promise_to_pay", "2026-11-01", "30.00", "2026-11-30", "来电"],
                        ["E2", "A3", "dispute_opened", "2026-11-02", "", "", "note"]],
}
NAMES = list(FILES)


def _csv_text(rows) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


PIECES = st.sampled_from([",", '"', "\n", "\r\n", "\r", "\x00", "=", "+", "-", "@", "\t", ";", "\ufeff",
                          "1e30", "NaN", "1,234.56", "9" * 29, "2026-W45-1", "20261101T0", "０",
                          "王", "é", "\u0100\u0101", "A1", "x" * 5000, "..", "'", " "])


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(NAMES))
    body = _csv_text(FILES[name])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["insert", "delete", "duplicate_line", "truncate"]))
        at = draw(st.integers(0, len(body)))
        if kind == "insert":
            body = body[:at] + draw(st.one_of(PIECES, st.text(max_size=8))) + body[at:]
        elif kind == "delete":
            body = body[:at] + body[at + draw(st.integers(1, 12)):]
        elif kind == "duplicate_line":
            lines = body.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            body = "\n".join(lines[:i + 1] + lines[i:])
        else:
            body = body[:at]
    encoding = draw(st.sampled_from(["utf-8", "gb18030"]))
    return name, body.encode(encoding, errors="replace")


FILE_BYTES = st.one_of(
    mutated(),
    st.tuples(st.sampled_from(NAMES), st.binary(max_size=300)),
)


def _data_rows(body: bytes, encoding: str | None) -> int:
    """Records after the header as the csv module reads them (blank lines are no records)."""
    codec = {"gb18030": "gb18030"}.get(encoding, "utf-8-sig")
    records = [r for r in csv.reader(io.StringIO(body.decode(codec), newline=""), strict=True) if r]
    return max(0, len(records) - 1)


def _extract_state(engine) -> tuple:
    """What D's delivery left in the database (the module's database is shared by examples)."""
    with engine.connect() as conn:
        return tuple(conn.execute(text(f"SELECT COUNT(*) FROM {table} WHERE cycle_date = :d"),
                                  {"d": D}).scalar()
                     for table in ("extract_accounts", "extract_bills", "quarantine"))


@pytest.fixture(scope="module")
def property_engine(module_db_url):
    from arrears.db import connect
    return connect(module_db_url)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(hostile=FILE_BYTES, encoding=st.sampled_from([None, "utf-8", "gb18030"]))
def test_ingest_never_crashes_loses_or_invents_a_row(property_engine, tmp_path_factory, hostile, encoding):
    name, body = hostile
    folder = tmp_path_factory.mktemp("landing")
    for other, rows in FILES.items():
        (folder / other).write_bytes(_csv_text(rows).encode(encoding or "utf-8"))
    (folder / name).write_bytes(body)
    before = _extract_state(property_engine)
    try:
        result = ingest_delivery(property_engine, folder, D, encoding=encoding)
    except IngestError as exc:
        assert name in str(exc), f"the error does not name {name}: {exc}"
        assert _extract_state(property_engine) == before  # a fatal file changes nothing
        return
    expected = {n: _data_rows((folder / n).read_bytes(), encoding) for n in NAMES}
    assert {n: result.rows[n] + result.quarantined[n] for n in NAMES} == expected
    with property_engine.connect() as conn:
        loaded = {"accounts.csv": "extract_accounts", "open_items.csv": "extract_bills"}
        for n, table in loaded.items():
            assert conn.execute(text(f"SELECT COUNT(*) FROM {table} WHERE cycle_date = :d"),
                                {"d": D}).scalar() == result.rows[n]
        assert conn.execute(text("SELECT COUNT(*) FROM quarantine WHERE cycle_date = :d"),
                            {"d": D}).scalar() == result.quarantined_total
