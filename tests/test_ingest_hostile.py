"""Hostile input (CONTRACT §1 "What counts as a bad row, precisely"), table-driven, on SQLite and
PostgreSQL: every case names the exact outcome.

- ROW_CASES: one hostile row each, all in one landing folder (so a bad row never stops the others):
  quarantined with exactly this reason, or accepted as exactly this value.
- FILE_CASES: one hostile file each: fatal with this message and nothing changed, or loaded as
  stated.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from arrears.ingest import IngestError, ingest_delivery
from factories import ACCOUNT_HEADER, BILL_HEADER, EVENT_HEADER, PAYMENT_HEADER, landing

D = date(2026, 11, 16)
MB = 1024 * 1024
PLAIN = ("is not a plain decimal (digits, optionally a point and one or two decimals; no exponent, "
         "no thousands separator)")
EXTRA = "the row has {} fields, the header {} (an unquoted comma in a value? quote the value)"
STAMP = "is not YYYY-MM-DDTHH:MM[:SS] with a UTC offset (Z or +08:00)"

HEADERS = {"accounts.csv": ACCOUNT_HEADER, "open_items.csv": BILL_HEADER,
           "payments.csv": PAYMENT_HEADER, "case_events.csv": EVENT_HEADER}
# The rows every hostile row sits among: they must load whatever their neighbours hold.
BASE = {
    "accounts.csv": [["A1", "王伟", "residential", "北京市朝阳区人民路1号", "", "", "", "", ""],
                     ["A2", "Mary Smith", "non_residential", "", "", "", "en", "", ""]],
    "open_items.csv": [["B1", "A1", "2026-09", "100.00", "2026-10-01"]],
    "payments.csv": [["P1", "A1", "", "20.00", "2026-11-15T10:00:00+08:00"]],
    "case_events.csv": [["E1", "A1", "dispute_opened", "2026-11-01", "", "", "ok"]],
}


def acct(account_id="AX", name="名字", klass="residential", address=""):
    return [account_id, name, klass, address, "", "", "", "", ""]


def bill(bill_id, amount="10.00", due="2026-11-01", period="2026-10", account="A1"):
    return [bill_id, account, period, amount, due]


def pay(payment_id, amount="10.00", paid_at="2026-11-15T10:00:00+08:00", account="A1"):
    return [payment_id, account, "", amount, paid_at]


def event(event_id, kind="dispute_opened", effective="2026-11-01", amount="", until="", note=""):
    return [event_id, "A1", kind, effective, amount, until, note]


@dataclass(frozen=True)
class Row:
    """One hostile row: ``row`` is a list of fields (written by csv) or a raw text line."""
    id: str
    file: str
    row: list | str
    reason: str | None = None                   # quarantined with exactly this reason
    accepted: tuple[str, str, str, object] | None = None  # (table, key, column, stored value)


LONG_ID = "A" * 65
ROW_CASES = [
    # accounts.csv
    Row("id-65-chars", "accounts.csv", acct(LONG_ID), "account_id has 65 characters, more than 64"),
    Row("id-8000-chars", "accounts.csv", acct("A" * 8000),
        "account_id has 8000 characters, more than 64"),
    Row("id-64-chars", "accounts.csv", acct("B" * 64),
        accepted=("extract_accounts", "B" * 64, "holder_name", "名字")),
    Row("nul-in-holder-name", "accounts.csv", acct("AN", "王\x00伟"), "holder_name contains a NUL byte"),
    Row("nul-in-unused-column", "accounts.csv", acct("AU") [:8] + ["sms\x00"],
        "opt_out contains a NUL byte"),
    Row("name-4096-chars", "accounts.csv", acct("AL", "名" * 4096),
        accepted=("extract_accounts", "AL", "holder_name", "名" * 4096)),
    Row("address-4097-chars", "accounts.csv", acct("AD", address="路" * 4097),
        "service_address has 4097 characters, more than 4096"),
    Row("one-megabyte-field", "accounts.csv", acct("AM", "x" * MB),
        f"holder_name has {MB} characters, more than 4096"),
    Row("extra-field", "accounts.csv", "AE,名字,residential,,,,,,,surplus",
        EXTRA.format(10, 9)),
    Row("formula-name-stored-as-is", "accounts.csv", acct("AF", "=HYPERLINK(\"http://x\")", address="+1"),
        accepted=("extract_accounts", "AF", "holder_name", "=HYPERLINK(\"http://x\")")),
    Row("blank-name", "accounts.csv", acct("AB", "  "), "holder_name is blank"),
    Row("bad-class", "accounts.csv", acct("AC", klass="industrial"),
        "customer_class 'industrial' is not one of residential, non_residential"),
    Row("duplicate-account", "accounts.csv", acct("A1"), "duplicate account_id 'A1' (the first row wins)"),
    Row("long-enum-value-cut-in-reason", "accounts.csv", acct("AK", klass="x" * 5000),
        "customer_class has 5000 characters, more than 4096"),
    # open_items.csv: amounts
    Row("amount-exponent", "open_items.csv", bill("B-exp", "1e30"), f"amount_due '1e30' {PLAIN}"),
    Row("amount-29-digits", "open_items.csv", bill("B-29", "1" * 29),
        f"amount_due '{'1' * 29}' is 10^12 or more"),
    Row("amount-1e17", "open_items.csv", bill("B-e17", "100000000000000000.00"),
        "amount_due '100000000000000000.00' is 10^12 or more"),
    Row("amount-exactly-1e12", "open_items.csv", bill("B-e12", "1000000000000.00"),
        "amount_due '1000000000000.00' is 10^12 or more"),
    Row("amount-just-under-1e12", "open_items.csv", bill("B-max", "999999999999.99"),
        accepted=("extract_bills", "B-max", "amount_fen", 99_999_999_999_999)),
    Row("amount-leading-zeros", "open_items.csv", bill("B-zeros", "0000000000000012.50"),
        accepted=("extract_bills", "B-zeros", "amount_fen", 1250)),
    Row("amount-nan", "open_items.csv", bill("B-nan", "NaN"), f"amount_due 'NaN' {PLAIN}"),
    Row("amount-infinity", "open_items.csv", bill("B-inf", "Infinity"), f"amount_due 'Infinity' {PLAIN}"),
    Row("amount-thousands-quoted", "open_items.csv", bill("B-th", "1,234.56"),
        f"amount_due '1,234.56' {PLAIN}"),
    Row("amount-thousands-unquoted", "open_items.csv", "B-thu,A1,2026-10,1,234.56,2026-11-01",
        EXTRA.format(6, 5)),
    Row("amount-three-decimals", "open_items.csv", bill("B-3d", "1.234"),
        "amount_due '1.234' has more than two decimals"),
    Row("amount-fullwidth-digits", "open_items.csv", bill("B-fw", "１２.00"), f"amount_due '１２.00' {PLAIN}"),
    Row("amount-leading-point", "open_items.csv", bill("B-pt", ".5"), f"amount_due '.5' {PLAIN}"),
    Row("amount-zero", "open_items.csv", bill("B-0", "0.00"), "amount_due '0.00' is not positive"),
    Row("amount-negative", "open_items.csv", bill("B-neg", "-5.00"), "amount_due '-5.00' is not positive"),
    Row("amount-one-decimal", "open_items.csv", bill("B-1d", " 12.5 "),
        accepted=("extract_bills", "B-1d", "amount_fen", 1250)),
    # open_items.csv: dates and periods
    Row("due-week-date", "open_items.csv", bill("B-wk", due="2026-W45-1"),
        "due_date '2026-W45-1' is not a date YYYY-MM-DD"),
    Row("due-basic-format-with-time", "open_items.csv", bill("B-T", due="20261101T0"),
        "due_date '20261101T0' is not a date YYYY-MM-DD"),
    Row("due-with-time", "open_items.csv", bill("B-dt", due="2026-11-01T00:00"),
        "due_date '2026-11-01T00:00' is not a date YYYY-MM-DD"),
    Row("due-ordinal", "open_items.csv", bill("B-ord", due="2026-305"),
        "due_date '2026-305' is not a date YYYY-MM-DD"),
    Row("due-not-in-calendar", "open_items.csv", bill("B-feb", due="2026-02-30"),
        "due_date '2026-02-30' is not a date YYYY-MM-DD"),
    Row("due-fullwidth-digits", "open_items.csv", bill("B-fwd", due="２０２６-11-01"),
        "due_date '２０２６-11-01' is not a date YYYY-MM-DD"),
    Row("period-fullwidth-digits", "open_items.csv", bill("B-fwp", period="２０２６-10"),
        "bill_period '２０２６-10' is not YYYY-MM"),
    Row("bill-account-id-too-long", "open_items.csv", bill("B-lid", account=LONG_ID),
        "account_id has 65 characters, more than 64"),
    Row("bill-nul-in-id", "open_items.csv", bill("B\x00X"), "bill_id contains a NUL byte"),
    # payments.csv
    Row("payment-exponent", "payments.csv", pay("P-exp", "1e30"), f"amount '1e30' {PLAIN}"),
    Row("payment-1e17", "payments.csv", pay("P-big", "100000000000000000.00"),
        "amount '100000000000000000.00' is 10^12 or more"),
    Row("payment-date-only", "payments.csv", pay("P-d", paid_at="2026-11-15"),
        f"paid_at '2026-11-15' {STAMP}"),
    Row("payment-week-date", "payments.csv", pay("P-w", paid_at="2026-W46-7T10:00+08:00"),
        f"paid_at '2026-W46-7T10:00+08:00' {STAMP}"),
    Row("payment-no-offset", "payments.csv", pay("P-o", paid_at="2026-11-15T10:00:00"),
        f"paid_at '2026-11-15T10:00:00' {STAMP}"),
    Row("payment-offset-out-of-range", "payments.csv", pay("P-25", paid_at="2026-11-15T10:00+25:00"),
        "paid_at '2026-11-15T10:00+25:00' is not a valid time"),
    Row("payment-time-past-year-9999", "payments.csv", pay("P-9999", paid_at="9999-12-31T23:00:00Z"),
        "paid_at '9999-12-31T23:00:00Z' is not a valid time"),
    Row("payment-utc-z", "payments.csv", pay("P-z", paid_at="2026-11-15T01:00:00Z"),
        accepted=("payments", "P-z", "amount_fen", 1000)),
    Row("payment-extra-field", "payments.csv", "P-x,A1,,1,234.56,2026-11-15T10:00:00+08:00",
        EXTRA.format(6, 5)),
    Row("payment-id-too-long", "payments.csv", pay("P" * 65), "payment_id has 65 characters, more than 64"),
    # case_events.csv
    Row("promise-amount-exponent", "case_events.csv",
        event("E-exp", "promise_to_pay", amount="1e30", until="2026-11-30"), f"amount '1e30' {PLAIN}"),
    Row("promise-amount-1e17", "case_events.csv",
        event("E-big", "promise_to_pay", amount="100000000000000000.00", until="2026-11-30"),
        "amount '100000000000000000.00' is 10^12 or more"),
    Row("event-week-date", "case_events.csv", event("E-wk", effective="2026-W45-1"),
        "effective_date '2026-W45-1' is not a date YYYY-MM-DD"),
    Row("until-basic-format", "case_events.csv",
        event("E-T", "payment_plan", until="20261101T0"), "until_date '20261101T0' is not a date YYYY-MM-DD"),
    Row("note-with-nul", "case_events.csv", event("E-nul", note="called\x00back"),
        "note contains a NUL byte"),
    Row("note-5000-chars", "case_events.csv", event("E-long", note="n" * 5000),
        "note has 5000 characters, more than 4096"),
    Row("note-formula-stored-as-is", "case_events.csv", event("E-f", note="@SUM(1+1)*cmd|' /C calc'!A0"),
        accepted=("case_events", "E-f", "note", "@SUM(1+1)*cmd|' /C calc'!A0")),
]


def _write(folder: Path) -> dict[str, int]:
    """The landing folder of BASE + ROW_CASES; returns each case's line number."""
    rows = {name: list(base) for name, base in BASE.items()}
    lines = {}
    for case in ROW_CASES:
        rows[case.file].append(case.row)
        lines[case.id] = len(rows[case.file]) + 1  # the header is line 1
    folder.mkdir(parents=True)
    for name, header in HEADERS.items():
        with (folder / name).open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header)
            for r in rows[name]:
                if isinstance(r, str):
                    fh.write(r + "\n")
                else:
                    writer.writerow(r)
    return lines


@pytest.fixture(scope="module")
def hostile(module_db_url, tmp_path_factory):
    """The row cases ingested once per backend: (engine, result, quarantine by (file, line), lines)."""
    from arrears.db import connect
    folder = tmp_path_factory.mktemp("hostile") / D.isoformat()
    lines = _write(folder)
    engine = connect(module_db_url)
    result = ingest_delivery(engine, folder, D)
    with engine.connect() as conn:
        quarantine = {(f, line): (reason, raw) for f, line, reason, raw in conn.execute(text(
            "SELECT file, line, reason, raw FROM quarantine"))}
    return engine, result, quarantine, lines


KEYS = {"extract_accounts": "account_id", "extract_bills": "bill_id", "payments": "payment_id",
        "case_events": "event_id"}


@pytest.mark.parametrize("case", ROW_CASES, ids=[c.id for c in ROW_CASES])
def test_hostile_row(hostile, case):
    engine, _, quarantine, lines = hostile
    line = lines[case.id]
    if case.reason is not None:
        assert quarantine[(case.file, line)][0] == case.reason
        return
    assert (case.file, line) not in quarantine
    table, key, column, value = case.accepted
    with engine.connect() as conn:
        stored = conn.execute(text(f"SELECT {column} FROM {table} WHERE {KEYS[table]} = :k"),
                              {"k": key}).scalar_one()
    assert stored == value


def test_every_row_is_loaded_or_quarantined_once(hostile):
    engine, result, quarantine, _ = hostile
    rows = {name: len(BASE[name]) + sum(c.file == name for c in ROW_CASES) for name in HEADERS}
    assert {n: result.rows[n] + result.quarantined[n] for n in HEADERS} == rows
    assert sum(result.quarantined.values()) == len(quarantine) == sum(c.reason is not None for c in ROW_CASES)
    with engine.connect() as conn:  # the neighbours of every hostile row loaded
        assert conn.execute(text("SELECT COUNT(*) FROM extract_accounts WHERE account_id IN ('A1', 'A2')")).scalar() == 2
        assert conn.execute(text("SELECT amount_fen FROM extract_bills WHERE bill_id = 'B1'")).scalar() == 10_000
        assert conn.execute(text("SELECT COUNT(*) FROM payments WHERE payment_id = 'P1'")).scalar() == 1
        assert conn.execute(text("SELECT COUNT(*) FROM case_events WHERE event_id = 'E1'")).scalar() == 1


def test_quarantined_raw_rows_are_storable_and_bounded(hostile):
    _, _, quarantine, lines = hostile
    nul_raw = quarantine[("accounts.csv", lines["nul-in-holder-name"])][1]
    assert nul_raw == "AN,王\\x00伟,residential,,,,,,"       # NUL shown, never stored
    huge_raw = quarantine[("accounts.csv", lines["one-megabyte-field"])][1]
    assert huge_raw.startswith("AM,xxx") and huge_raw.endswith(f"[{MB + 21 - 8192} more characters]")
    assert quarantine[("open_items.csv", lines["amount-thousands-unquoted"])][1] == \
        "B-thu,A1,2026-10,1,234.56,2026-11-01"


# --------------------------------------------------------------------------- whole files

GOOD = {"accounts.csv": BASE["accounts.csv"], "open_items.csv": BASE["open_items.csv"]}
TABLES = ("extract_accounts", "extract_bills", "payments", "payment_sightings", "case_events",
          "quarantine", "deliveries")


def _snapshot(engine) -> list:
    with engine.connect() as conn:
        return [sorted(map(repr, conn.execute(text(f"SELECT * FROM {t}")).all())) for t in TABLES]


def _folder(tmp_path: Path, **files: bytes) -> Path:
    folder = landing(tmp_path / "bad", GOOD["accounts.csv"], GOOD["open_items.csv"])
    for name, body in files.items():
        (folder / name.replace("_csv", ".csv")).write_bytes(body)
    return folder


def _csv(header: list[str], *lines: str) -> bytes:
    return ("\n".join([",".join(header), *lines]) + "\n").encode("utf-8")


ACCOUNTS_HEAD = ",".join(ACCOUNT_HEADER)
FATAL = [
    ("missing-required-column", {"accounts_csv": b"account_id,holder_name\nA9,x\n"}, None,
     r"accounts.csv: line 1: required column\(s\) customer_class missing \(header has: "
     r"account_id, holder_name\); ask the billing team"),
    ("optional-file-missing-column", {"payments_csv": b"payment_id,account_id\nP9,A1\n"}, None,
     r"payments.csv: line 1: required column\(s\) amount, paid_at missing"),
    ("duplicate-header-column", {"open_items_csv": _csv(BILL_HEADER + ["amount_due"], "B9,A1,2026-10,1.00,2026-11-01,9.00")},
     None, r"open_items.csv: line 1: column\(s\) amount_due appear more than once"),
    ("stray-quote", {"open_items_csv": _csv(BILL_HEADER, "B8,A1,2026-10,1.00,2026-11-01",
                                            'B9,"A1"x,2026-10,1.00,2026-11-01')}, None,
     r"open_items.csv: line 3: cannot be parsed as CSV \(',' expected after '\"'\); ask the billing team"),
    ("unclosed-quote", {"open_items_csv": _csv(BILL_HEADER, 'B9,A1,2026-10,"1.00,2026-11-01')}, None,
     r"open_items.csv: line \d+: cannot be parsed as CSV \(unexpected end of data\)"),
    ("invalid-utf8-byte", {"accounts_csv": _csv(ACCOUNT_HEADER, "A1,王伟,residential,,,,,,")
                           + b"A9,\xff\xfe,residential,,,,,,\n"}, None,
     r"accounts.csv: line 3, byte 4: not valid utf-8; if the file is GB18030/GBK, set encoding "
     r"gb18030 \(run conf 'encoding' or the Airflow variable arrears_encoding\)"),
    ("binary-file", {"accounts_csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"}, None,
     r"accounts.csv: line 1, byte 1: not valid utf-8"),
    ("gb18030-undeclared", {"accounts_csv": (ACCOUNTS_HEAD + "\nA1,王伟,residential,,,,,,\n"
                                                             ).encode("gb18030")}, None,
     r"accounts.csv: line 2, byte 4: not valid utf-8"),
    # found by the property test: the text reader drops a lone truncated BOM without a word
    ("optional-file-truncated-bom", {"payments_csv": b"\xef"}, None,
     r"payments.csv: line 1, byte 1: not valid utf-8"),
    ("required-file-truncated-bom", {"accounts_csv": b"\xef\xbb"}, None,
     r"accounts.csv: line 1, byte 1: not valid utf-8"),
    ("required-file-zero-bytes", {"open_items_csv": b""}, None,
     r"open_items.csv: the file is empty \(no header row\)"),
    ("unsupported-encoding", {}, "latin-1", r"encoding 'latin-1' is not supported: use utf-8 or gb18030"),
    ("invalid-gb18030-byte", {"accounts_csv": _csv(ACCOUNT_HEADER, "A1,王伟,residential,,,,,,")
                              + b"A9,\x80,residential,,,,,,\n"}, "gb18030",
     r"accounts.csv: line 3, byte 4: not valid gb18030; ask the billing team for a GB18030 export"),
]


@pytest.mark.parametrize("files, encoding, message", [f[1:] for f in FATAL], ids=[f[0] for f in FATAL])
def test_hostile_file_is_fatal_and_changes_nothing(engine, tmp_path, files, encoding, message):
    ingest_delivery(engine, landing(tmp_path / "good", BASE["accounts.csv"], BASE["open_items.csv"],
                                    BASE["payments.csv"], BASE["case_events.csv"]), D)
    before = _snapshot(engine)
    with pytest.raises(IngestError, match=message) as error:
        ingest_delivery(engine, _folder(tmp_path, **files), D, encoding=encoding)
    assert "nothing was loaded; when fixed, clear the ingest task to retry" in str(error.value)
    assert _snapshot(engine) == before


def _mojibake_accounts() -> bytes:
    """A GB18030 accounts file whose bytes are also valid UTF-8: the names are Chinese
    characters whose GB18030 codes are UTF-8 two-byte sequences (lead 0xC2-0xDF, trail
    0x80-0xBF), so UTF-8 reads them as Latin, Greek or Cyrillic letters."""
    names = ["".join(chr(c) for c in range(0x4E00, 0x9FA6)
                     if 0xC2 <= (b := chr(c).encode("gb18030"))[0] <= 0xDF and 0x80 <= b[1] <= 0xBF)[i:i + 2]
             for i in (0, 10, 20)]
    rows = [f"M{i},{n},residential,{n},,,,," for i, n in enumerate(names)]
    return (ACCOUNTS_HEAD + "\n" + "\n".join(rows) + "\n").encode("gb18030")


def test_the_gb18030_case_is_real():
    body = _mojibake_accounts()
    assert body.decode("utf-8") != body.decode("gb18030")  # valid UTF-8 and valid GB18030


def test_undeclared_gb18030_that_is_valid_utf8_fails_clearly(engine, tmp_path):
    folder = _folder(tmp_path, accounts_csv=_mojibake_accounts())
    with pytest.raises(IngestError, match=r"accounts.csv: the encoding was not declared and the "
                       r"file reads as GB18030, not UTF-8 \(line 2: .* 3 such rows, 0 with Chinese "
                       r"in UTF-8\): set encoding gb18030, or utf-8 if the file really is UTF-8"):
        ingest_delivery(engine, folder, D)
    assert _snapshot(engine) == [[] for _ in TABLES]
    # Declared, it loads: as GB18030 (the names it holds) or, if someone insists, as UTF-8.
    ingest_delivery(engine, folder, D, encoding="gb18030")
    expected = _mojibake_accounts().decode("gb18030").splitlines()[1].split(",")[1]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT holder_name FROM extract_accounts WHERE account_id = 'M0'")).scalar() == expected
    ingest_delivery(engine, folder, D, encoding="utf-8")


def test_utf8_with_latin_and_a_few_foreign_names_is_plausible(engine, tmp_path):
    accounts = BASE["accounts.csv"] + [acct("F1", "José Müller"), acct("F2", "Иван"), acct("F3", "Zoë")]
    result = ingest_delivery(engine, landing(tmp_path / "d", accounts, BASE["open_items.csv"]), D)
    assert result.rows["accounts.csv"] == 5 and result.quarantined_total == 0


@pytest.mark.parametrize("body", [b"", b"\xef\xbb\xbf", ("\n").encode(), None],
                         ids=["zero-bytes", "bom-only", "blank-line", "header-only"])
@pytest.mark.parametrize("name", ["payments.csv", "case_events.csv"])
def test_an_empty_optional_file_means_no_rows(engine, tmp_path, name, body):
    folder = landing(tmp_path / "d", BASE["accounts.csv"], BASE["open_items.csv"])
    (folder / name).write_bytes(body if body is not None else (",".join(HEADERS[name]) + "\n").encode())
    result = ingest_delivery(engine, folder, D)
    assert result.rows[name] == 0 and result.quarantined[name] == 0
    assert result.rows["accounts.csv"] == 2
