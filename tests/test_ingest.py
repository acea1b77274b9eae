"""CONTRACT §1: the billing extract, its bad input and re-delivery, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import text

from arrears.cycle.decide import stage_bills
from arrears.ingest import IngestError, ingest_delivery
from factories import ACCOUNT_HEADER, landing, write_csv

D = date(2026, 11, 16)
ACCOUNTS = [
    ["A1", "王伟", "residential", "北京市朝阳区人民路1号", "wang@example.com", "13900000001", "", "", ""],
    ["A2", "Mary Smith", "non_residential", "", "mary@example", "+447700900123", "en", "medical_device;low_income", "sms"],
]
BILLS = [
    ["B1", "A1", "2026-09", "100.00", "2026-10-01"],
    ["B2", "A1", "2026-10", "50.00", "2026-11-01"],
    ["B3", "A2", "2026-10", "300.00", "2026-11-10"],
]


def dump(engine, table: str) -> list:
    with engine.connect() as conn:
        return sorted(map(tuple, conn.execute(text(f"SELECT * FROM {table}")).all()), key=repr)


def quarantine(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT file, line, reason FROM quarantine ORDER BY file, line")).all()]


def test_a_clean_delivery_loads(engine, tmp_path):
    folder = landing(tmp_path / D.isoformat(), ACCOUNTS, BILLS)
    result = ingest_delivery(engine, folder, D)
    assert result.rows == {"accounts.csv": 2, "open_items.csv": 3, "payments.csv": 0, "case_events.csv": 0}
    assert result.quarantined_total == 0
    rows = dump(engine, "extract_accounts")
    a1 = next(r for r in rows if r[1] == "A1")
    assert a1[5:9] == ("wang@example.com", "+8613900000001", "zh-CN", "")   # default language
    a2 = next(r for r in rows if r[1] == "A2")
    assert a2[5] == ""                       # invalid email: a contact gap, not an error
    assert a2[8:10] == ("low_income;medical_device", "sms")
    assert result.contact_gaps == 1


def test_utf8_bom_and_unknown_columns_are_accepted(engine, tmp_path):
    folder = tmp_path / D.isoformat()
    write_csv(folder / "accounts.csv", ["extra", *ACCOUNT_HEADER[::-1]],
              [["x", *row[::-1]] for row in ACCOUNTS], bom=True)
    write_csv(folder / "open_items.csv", ["bill_id", "account_id", "bill_period", "amount_due", "due_date"], BILLS, bom=True)
    assert ingest_delivery(engine, folder, D).rows["accounts.csv"] == 2
    assert {r[1] for r in dump(engine, "extract_accounts")} == {"A1", "A2"}


def test_gb18030_when_told(engine, tmp_path):
    folder = landing(tmp_path / D.isoformat(), ACCOUNTS, BILLS, encoding="gb18030")
    with pytest.raises(IngestError, match="accounts.csv: line 2, byte 4: not valid utf-8.*gb18030"):
        ingest_delivery(engine, folder, D)
    assert dump(engine, "extract_accounts") == []
    ingest_delivery(engine, folder, D, encoding="gb18030")
    names = {r[2] for r in dump(engine, "extract_accounts")}
    assert "王伟" in names


def test_missing_required_column_fails_and_changes_nothing(engine, tmp_path):
    good = landing(tmp_path / "good", ACCOUNTS, BILLS)
    ingest_delivery(engine, good, D)
    before = [dump(engine, t) for t in ("extract_accounts", "extract_bills", "deliveries")]
    bad = tmp_path / "bad"
    write_csv(bad / "accounts.csv", ["account_id", "holder_name"], [["A9", "x"]])
    write_csv(bad / "open_items.csv", ["bill_id", "account_id", "bill_period", "amount_due", "due_date"], [])
    with pytest.raises(IngestError, match=r"accounts.csv: line 1: required column\(s\) customer_class missing"):
        ingest_delivery(engine, bad, D)
    assert [dump(engine, t) for t in ("extract_accounts", "extract_bills", "deliveries")] == before


def test_unparseable_file_fails_with_nothing_half_loaded(engine, tmp_path):
    folder = landing(tmp_path / D.isoformat(), ACCOUNTS, BILLS)
    with (folder / "open_items.csv").open("ab") as fh:
        fh.write(b"B9,\"A1\"broken,2026-10,1.00,2026-11-01\n")
    with pytest.raises(IngestError, match=r"open_items.csv: line 5: cannot be parsed as CSV"):
        ingest_delivery(engine, folder, D)
    assert dump(engine, "extract_accounts") == [] and dump(engine, "extract_bills") == []


def test_missing_required_file(engine, tmp_path):
    folder = tmp_path / D.isoformat()
    write_csv(folder / "accounts.csv", ACCOUNT_HEADER, ACCOUNTS)
    with pytest.raises(IngestError, match="required file open_items.csv is missing"):
        ingest_delivery(engine, folder, D)


def test_empty_file_is_a_clear_error(engine, tmp_path):
    folder = landing(tmp_path / D.isoformat(), ACCOUNTS, BILLS)
    (folder / "open_items.csv").write_bytes(b"")
    with pytest.raises(IngestError, match="open_items.csv: the file is empty"):
        ingest_delivery(engine, folder, D)


def test_bad_rows_are_quarantined_with_file_line_and_reason(engine, tmp_path):
    accounts = ACCOUNTS + [
        ["A1", "重复", "residential", "", "", "", "", "", ""],          # line 4: duplicate key
        ["A3", "类别", "industrial", "", "", "", "", "", ""],           # line 5: bad enum
        ["A4", "语言", "residential", "", "", "", "fr", "", ""],        # line 6: bad language
        ["A5", "保护", "residential", "", "", "", "", "vip", ""],       # line 7: bad protection
        ["", "无户号", "residential", "", "", "", "", "", ""],          # line 8: blank key
    ]
    bills = BILLS + [
        ["B4", "NOPE", "2026-10", "10.00", "2026-11-01"],               # line 5: unknown account
        ["B5", "A1", "2026-10", "10.00", "2026-02-30"],                 # line 6: bad date
        ["B6", "A1", "2026-10", "-1.00", "2026-11-01"],                 # line 7: not positive
        ["B7", "A1", "2026-10", "abc", "2026-11-01"],                   # line 8: not numeric
        ["B1", "A1", "2026-10", "10.00", "2026-11-01"],                 # line 9: duplicate bill
        ["B8", "A1", "2026-13", "10.00", "2026-11-01"],                 # line 10: bad period
        ["B9", "A1", "2026-10", "0", "2026-11-01"],                     # line 11: zero
    ]
    payments = [
        ["P1", "A1", "", "20.00", "2026-11-15T10:00:00+08:00"],
        ["P1", "A1", "", "20.00", "2026-11-15T10:00:00+08:00"],         # line 3: duplicate
        ["P2", "A1", "", "20.00", "2026-11-16T09:00:00+08:00"],         # line 4: paid on D
        ["P3", "A1", "", "20.00", "2026-11-15T10:00:00"],               # line 5: no offset
        ["P4", "A1", "B3", "20.00", "2026-11-15T10:00:00+08:00"],       # line 6: bill of A2
    ]
    events = [
        ["E1", "A1", "lawsuit", "2026-11-01", "", "", ""],              # line 2: bad enum
        ["E2", "A1", "promise_to_pay", "2026-11-01", "", "", ""],       # line 3: no amount/date
        ["E3", "A1", "dispute_opened", "2026-11-01", "", "", "ok"],
    ]
    folder = landing(tmp_path / D.isoformat(), accounts, bills, payments, events)
    result = ingest_delivery(engine, folder, D)
    q = quarantine(engine)
    lines = {(f, line) for f, line, _ in q}
    assert lines == {("accounts.csv", n) for n in (4, 5, 6, 7, 8)} | \
        {("open_items.csv", n) for n in range(5, 12)} | \
        {("payments.csv", n) for n in (3, 4, 5, 6)} | {("case_events.csv", 2), ("case_events.csv", 3)}
    reasons = {(f, line): reason for f, line, reason in q}
    assert "duplicate account_id 'A1' (the first row wins)" in reasons[("accounts.csv", 4)]
    assert "customer_class 'industrial'" in reasons[("accounts.csv", 5)]
    assert "not in accounts.csv" in reasons[("open_items.csv", 5)]
    assert "not a date" in reasons[("open_items.csv", 6)]
    assert "not positive" in reasons[("open_items.csv", 7)]
    assert "not a plain decimal" in reasons[("open_items.csv", 8)]
    assert "duplicate bill_id 'B1'" in reasons[("open_items.csv", 9)]
    assert "not on 2026-11-16 - 1 or earlier" in reasons[("payments.csv", 4)]
    assert "with a UTC offset" in reasons[("payments.csv", 5)]
    assert "event_type 'lawsuit'" in reasons[("case_events.csv", 2)]
    # The rest of each file was processed; the first duplicate won.
    assert result.rows == {"accounts.csv": 2, "open_items.csv": 3, "payments.csv": 1, "case_events.csv": 1}
    assert result.quarantined_total == len(q) == 18
    a1 = next(r for r in dump(engine, "extract_accounts") if r[1] == "A1")
    assert a1[2] == "王伟"


def test_redelivery_gives_the_same_state(engine, tmp_path):
    payments = [["P1", "A1", "", "30.00", "2026-11-15T10:00:00+08:00"]]
    events = [["E1", "A1", "dispute_opened", "2026-11-10", "", "", ""]]
    folder = landing(tmp_path / D.isoformat(), ACCOUNTS, BILLS + [["B1", "A1", "x", "1", "x"]], payments, events)
    tables = ("extract_accounts", "extract_bills", "payments", "payment_sightings", "case_events", "quarantine")
    ingest_delivery(engine, folder, D)
    first = [dump(engine, t) for t in tables]
    ingest_delivery(engine, folder, D)
    assert [dump(engine, t) for t in tables] == first


def test_a_payment_seen_again_is_the_same_payment(engine, tmp_path):
    pay = ["P1", "A1", "", "30.00", "2026-11-15T10:00:00+08:00"]
    ingest_delivery(engine, landing(tmp_path / "d1", ACCOUNTS, BILLS, [pay]), D)
    d2 = D + timedelta(days=1)
    changed = ["P1", "A1", "", "99.00", "2026-11-15T10:00:00+08:00"]
    ingest_delivery(engine, landing(tmp_path / "d2", ACCOUNTS, BILLS, [pay]), d2)
    assert len(dump(engine, "payments")) == 1
    assert len(dump(engine, "payment_sightings")) == 2
    d3 = D + timedelta(days=2)
    result = ingest_delivery(engine, landing(tmp_path / "d3", ACCOUNTS, BILLS, [changed]), d3)
    assert result.quarantined["payments.csv"] == 1
    assert "recorded before with other content" in quarantine(engine)[0][2]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT amount_fen FROM payments")).scalar_one() == 3000


def test_staging_applies_payments_to_their_bill_then_oldest_first(engine, tmp_path):
    payments = [
        ["P1", "A1", "", "120.00", "2026-11-15T10:00:00+08:00"],      # pool: B1 (100) then 20 of B2
        ["P2", "A2", "B3", "350.00", "2026-11-14T10:00:00+08:00"],    # direct, 50 overflow unused
    ]
    ingest_delivery(engine, landing(tmp_path / "d", ACCOUNTS, BILLS, payments), D)
    assert stage_bills(engine, D) == 3
    with engine.connect() as conn:
        staged = {r[0]: (r[1], r[2]) for r in conn.execute(text(
            "SELECT bill_id, paid_fen, open_fen FROM staged_bills WHERE cycle_date = :d"), {"d": D})}
    assert staged == {"B1": (10_000, 0), "B2": (2_000, 3_000), "B3": (30_000, 0)}


def test_staging_stores_what_payments_paid_and_a_redelivery_waits_for_its_own(engine, tmp_path):
    """Staging writes only the bills a payment paid; staged_bills shows D's whole extract with
    them applied, and nothing of D between a re-delivery and its staging."""
    payments = [["P1", "A1", "B1", "40.00", "2026-11-15T10:00:00+08:00"]]
    ingest_delivery(engine, landing(tmp_path / "d", ACCOUNTS, BILLS, payments), D)
    stage_bills(engine, D)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT bill_id, paid_fen FROM staged_payments")).all()
        staged = sorted(tuple(r) for r in conn.execute(text(
            "SELECT bill_id, amount_fen, paid_fen, open_fen FROM staged_bills WHERE cycle_date = :d"),
            {"d": D}))
    assert [tuple(r) for r in stored] == [("B1", 4_000)]
    assert staged == [("B1", 10_000, 4_000, 6_000), ("B2", 5_000, 0, 5_000), ("B3", 30_000, 0, 30_000)]
    ingest_delivery(engine, landing(tmp_path / "d-again", ACCOUNTS, BILLS, []), D)
    assert rows_of(engine, "SELECT COUNT(*) FROM staged_bills") == [(0,)]
    assert stage_bills(engine, D) == 3
    assert rows_of(engine, "SELECT SUM(paid_fen), SUM(open_fen) FROM staged_bills") == [(0, 45_000)]


def rows_of(engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def _context(cycle_date: date, started: datetime, wait_minutes: int = 5):
    run = SimpleNamespace(run_id="scheduled__x", run_type="scheduled", run_after=None, start_date=started)
    logical = datetime(cycle_date.year, cycle_date.month, cycle_date.day, 1, tzinfo=timezone.utc)
    return {"dag_run": run, "logical_date": logical, "params": {"landing_wait_minutes": wait_minutes}}


def test_a_missing_folder_is_waited_for_then_fails_clearly(tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from arrears.ingest import tasks as ingest_steps
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_LANDING", str(tmp_path))
    now = datetime.now(timezone.utc)
    assert ingest_steps.landing_ready(_context(D, now)) is False
    with pytest.raises(AirflowFailException, match="did not arrive within 0:05:00.*clear this task"):
        ingest_steps.landing_ready(_context(D, now - timedelta(minutes=6)))
    landing(tmp_path / D.isoformat(), ACCOUNTS, BILLS)
    assert ingest_steps.landing_ready(_context(D, now - timedelta(minutes=6))) is True


def _remembered(engine) -> dict:
    with engine.connect() as conn:
        return {"payments": dict(conn.execute(text("SELECT payment_id, first_seen FROM payments")).all()),
                "events": dict(conn.execute(text("SELECT event_id, first_seen FROM case_events")).all())}


def _day(value) -> str:
    return str(value)[:10]  # a DATE comes back as a date (PostgreSQL) or text (SQLite)


def test_redelivery_of_d_replaces_only_what_d_alone_said(engine, tmp_path):
    """CONTRACT §1: an event or payment that D+1 also delivered survives a corrected D."""
    d1 = D + timedelta(days=1)
    p_both = ["P1", "A1", "", "30.00", "2026-11-15T10:00:00+08:00"]
    p_d_only = ["P2", "A1", "", "5.00", "2026-11-15T11:00:00+08:00"]
    e_both = ["E1", "A1", "dispute_opened", "2026-11-10", "", "", ""]
    e_d_only = ["E2", "A1", "deceased", "2026-11-10", "", "", ""]
    ingest_delivery(engine, landing(tmp_path / "d", ACCOUNTS, BILLS, [p_both, p_d_only], [e_both, e_d_only]), D)
    ingest_delivery(engine, landing(tmp_path / "d1", ACCOUNTS, BILLS, [p_both], [e_both]), d1)
    # The corrected D drops all four: only what D alone said goes.
    ingest_delivery(engine, landing(tmp_path / "d-fixed", ACCOUNTS, BILLS, [], []), D)
    kept = _remembered(engine)
    assert set(kept["payments"]) == {"P1"} and set(kept["events"]) == {"E1"}
    # Known from D+1 now (the day whose delivery still says so), not from D.
    assert _day(kept["payments"]["P1"]) == _day(kept["events"]["E1"]) == "2026-11-17"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM payment_sightings WHERE cycle_date = :d"),
                            {"d": D}).scalar() == 0
    # Re-delivering D as it first was brings them back, known from D again.
    ingest_delivery(engine, landing(tmp_path / "d-again", ACCOUNTS, BILLS, [p_both, p_d_only],
                                    [e_both, e_d_only]), D)
    again = _remembered(engine)
    assert {k: _day(v) for k, v in again["payments"].items()} == {"P1": "2026-11-16", "P2": "2026-11-16"}
    assert {k: _day(v) for k, v in again["events"].items()} == {"E1": "2026-11-16", "E2": "2026-11-16"}


def test_redelivery_keeps_events_no_delivery_carried(engine, tmp_path):
    """An event recorded by people (no extract sighting) is not the delivery's to remove."""
    ingest_delivery(engine, landing(tmp_path / "d", ACCOUNTS, BILLS, [], []), D)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO case_events (event_id, account_id, event_type, effective_date,"
                          " note, first_seen) VALUES ('API-1', 'A1', 'dispute_opened', :d, '', :d)"),
                     {"d": D})
    ingest_delivery(engine, landing(tmp_path / "d2", ACCOUNTS, BILLS, [], []), D)
    assert set(_remembered(engine)["events"]) == {"API-1"}


def test_encoding_per_deployment_and_per_run(tmp_path, monkeypatch, db_url):
    """The Airflow variable arrears_encoding sets the deployment's encoding; the run conf wins."""
    from arrears.ingest import tasks as ingest_steps
    from arrears.db import connect
    from cycle_steps import context, use_database
    use_database(monkeypatch, db_url, tmp_path / "landing", tmp_path / "outbox")
    landing(tmp_path / "landing" / D.isoformat(), ACCOUNTS, BILLS, encoding="gb18030")
    with pytest.raises(IngestError, match="not valid utf-8"):
        ingest_steps.ingest(context(D, conf={"encoding": None}))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_ENCODING", "gb18030")
    assert ingest_steps.ingest(context(D, conf={"encoding": None}))["rows"]["accounts.csv"] == 2
    with pytest.raises(IngestError, match="not valid utf-8"):
        ingest_steps.ingest(context(D, conf={"encoding": "utf-8"}))   # the run says otherwise
    names = {r[2] for r in dump(connect(db_url), "extract_accounts")}
    assert "王伟" in names
