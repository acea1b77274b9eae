"""The credit-bureau file: fixed-width header, detail and trailer records laid out as a layout
file under include/bureau/ declares (CONTRACT §3), its writer, and the reader auditors use.

    python -m arrears.batches.bureau verify <file> [--layout metro2_like|path.toml]
    python -m arrears.batches.bureau dump <file> [--layout ...]     # records as JSON lines

``verify`` parses every record back, checks lengths, constants, the record order and that each
trailer aggregate (record count, amount totals) equals what the details add up to; with the
batch's ``manifest.csv`` next to the file it also checks the manifest against the records.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import sys
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from arrears.batches.store import MANIFEST, BatchFolder
from arrears.outbox_files import as_storage_path, sha256
from arrears.spreadsheet import csv_bytes
from arrears.money import format_fen
from arrears.paths import INCLUDE
from arrears.records.decided import Decided
from arrears.settings import get_variable
from arrears.utility import identity

log = logging.getLogger(__name__)
BUREAU_DIR = INCLUDE / "bureau"
DEFAULT_LAYOUT = "metro2_like"
RECORD_TYPES = ("header", "detail", "trailer")
FIELD_TYPES = ("alpha", "numeric", "amount", "date")
MANIFEST_COLUMNS = ("account_id", "file", "record", "outstanding", "sha256")


class LayoutError(ValueError):
    """A layout file that does not describe a usable record layout."""


class BureauFileError(ValueError):
    """A bureau file that does not match its layout or whose trailer does not add up."""


@dataclass(frozen=True)
class Field:
    name: str
    width: int
    type: str
    value: object = None
    source: str | None = None
    aggregate: str | None = None


@dataclass(frozen=True)
class Layout:
    name: str
    record_length: int
    encoding: str
    separator: bytes
    date_format: str
    file_name: str
    reporter: dict
    account_status: tuple[tuple[int, str], ...]
    records: dict[str, tuple[Field, ...]]
    paid_status: str = "13"

    def status_for(self, dpd: int) -> str:
        return next((code for days, code in self.account_status if dpd >= days), "")

    def name_for(self, cycle_date: date) -> str:
        return self.file_name.format(cycle_date=cycle_date)


def load_layout(name_or_path: str | Path | None = None) -> Layout:
    """A layout by name (include/bureau/<name>.toml) or path; checked before any byte is written."""
    name = name_or_path or get_variable("arrears_bureau_layout") or DEFAULT_LAYOUT
    path = Path(name) if str(name).endswith(".toml") else BUREAU_DIR / f"{name}.toml"
    if not path.is_file():
        raise LayoutError(f"bureau layout {path} not found: name a file of {BUREAU_DIR} "
                          "(Airflow variable arrears_bureau_layout) or give a path")
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    try:
        length = int(raw["record_length"])
        records = {}
        for kind in RECORD_TYPES:
            fields = tuple(Field(f["name"], int(f["width"]), f["type"], f.get("value"),
                                 f.get("source"), f.get("aggregate")) for f in raw[kind])
            total = sum(f.width for f in fields)
            if total != length:
                raise LayoutError(f"{path}: the {kind} fields add up to {total} bytes but "
                                  f"record_length is {length}: adjust a width (e.g. the filler)")
            for f in fields:
                if f.type not in FIELD_TYPES:
                    raise LayoutError(f"{path}: {kind}.{f.name} has type {f.type!r}, not one of {FIELD_TYPES}")
                if f.aggregate and (kind != "trailer" or not (
                        f.aggregate == "count" or f.aggregate.removeprefix("sum:") in
                        {d["name"] for d in raw["detail"]})):
                    raise LayoutError(f"{path}: {kind}.{f.name} aggregate {f.aggregate!r} is not "
                                      "'count' or 'sum:<detail field>' in the trailer")
            records[kind] = fields
        status = tuple(sorted(((int(k), str(v)) for k, v in raw.get("account_status", {}).items()),
                              reverse=True))
        layout = Layout(str(raw["name"]), length, str(raw["encoding"]),
                        str(raw.get("record_separator", "\n")).encode("ascii"),
                        str(raw["date_format"]), str(raw["file_name"]),
                        dict(raw.get("reporter") or identity()["bureau_reporter"]),
                        status, records, str(raw.get("paid", {}).get("account_status", "13")))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, LayoutError):
            raise
        raise LayoutError(f"{path} is malformed: {exc!r}") from exc
    "".encode(layout.encoding)  # an unknown encoding fails here, not mid-file
    return layout


# -- writing ---------------------------------------------------------------------------------

def _fit_text(text: str, width: int, encoding: str) -> bytes:
    out = b""
    for ch in text:
        piece = ch.encode(encoding, errors="replace")
        if len(out) + len(piece) > width:
            break  # cut on a character boundary: a field never holds half a character
        out += piece
    return out + b" " * (width - len(out))


def encode_field(f: Field, value, layout: Layout) -> bytes:
    if f.type == "alpha":
        return _fit_text("" if value is None else str(value), f.width, layout.encoding)
    if f.type == "date":
        if value is None:
            return b" " * f.width
        text = value.strftime(layout.date_format)
    else:
        number = int(value or 0)
        if number < 0:
            raise BureauFileError(f"{f.name}: negative value {number} cannot be written")
        text = str(number).rjust(f.width, "0")
    if len(text) != f.width:
        raise BureauFileError(f"{f.name}: {text!r} does not fit {f.width} bytes")
    return text.encode("ascii")


def encode_record(kind: str, data: dict, layout: Layout) -> bytes:
    out = b"".join(encode_field(f, f.value if f.value is not None else
                                data.get(f.source) if f.source else None, layout)
                   for f in layout.records[kind])
    assert len(out) == layout.record_length, (kind, len(out))
    return out


def _aggregates(details: list[dict], layout: Layout) -> dict:
    values = {}
    for f in layout.records["trailer"]:
        if f.aggregate == "count":
            values[f.name] = len(details)
        elif f.aggregate:
            values[f.name] = sum(d[f.aggregate.removeprefix("sum:")] for d in details)
    return values


def build_file(cycle_date: date, accounts: list[dict], layout: Layout) -> bytes:
    """The bureau file for D: ``accounts`` carry the detail sources (account_id, outstanding_fen...)."""
    reporter = {f"reporter_{k}": v for k, v in layout.reporter.items()}
    records = [encode_record("header", {**reporter, "cycle_date": cycle_date}, layout)]
    details = []
    for n, account in enumerate(accounts, start=1):
        data = {**reporter, **account, "cycle_date": cycle_date, "sequence": n,
                "account_status": layout.paid_status if account.get("paid")
                else layout.status_for(account["dpd"])}
        record = encode_record("detail", data, layout)
        records.append(record)
        details.append(decode_record("detail", record, layout))
    # The trailer adds up the details as written (and as the reader will read them back).
    sums = _aggregates(details, layout)
    records.append(b"".join(encode_field(f, f.value if f.value is not None else sums.get(f.name),
                                         layout) for f in layout.records["trailer"]))
    return layout.separator.join(records) + layout.separator


# -- reading ---------------------------------------------------------------------------------

def decode_field(f: Field, raw: bytes, layout: Layout):
    if f.type == "alpha":
        return raw.decode(layout.encoding).rstrip(" ")
    text = raw.decode("ascii")
    if f.type == "date":
        return None if not text.strip() else datetime.strptime(text, layout.date_format).date()
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number")
    return int(text)


def decode_record(kind: str, record: bytes, layout: Layout) -> dict:
    out, pos = {}, 0
    for f in layout.records[kind]:
        raw = record[pos:pos + f.width]
        pos += f.width
        try:
            value = decode_field(f, raw, layout)
        except ValueError as exc:
            raise BureauFileError(f"{kind} field {f.name}: {exc}") from None
        if f.value is not None and value != f.value:
            raise BureauFileError(f"{kind} field {f.name} is {value!r}, the layout says {f.value!r}")
        out[f.name] = value
    return out


@dataclass
class BureauFile:
    header: dict
    details: list[dict]
    trailer: dict


def parse(data: bytes, layout: Layout) -> BureauFile:
    """Every record parsed back; raises BureauFileError naming the record and the problem."""
    if not data.endswith(layout.separator):
        raise BureauFileError("the file does not end with a record separator: it is cut short")
    lines = data[:-len(layout.separator)].split(layout.separator)
    if len(lines) < 2:
        raise BureauFileError(f"{len(lines)} record(s): a file needs at least a header and a trailer")
    for n, line in enumerate(lines, start=1):
        if len(line) != layout.record_length:
            raise BureauFileError(f"record {n} is {len(line)} bytes, the layout says {layout.record_length}")
    try:
        header = decode_record("header", lines[0], layout)
        details = []
        for n, line in enumerate(lines[1:-1], start=2):
            try:
                details.append(decode_record("detail", line, layout))
            except BureauFileError as exc:
                raise BureauFileError(f"record {n}: {exc}") from None
        trailer = decode_record("trailer", lines[-1], layout)
    except UnicodeDecodeError as exc:
        raise BureauFileError(f"text that is not {layout.encoding}: {exc}") from None
    return BureauFile(header, details, trailer)


def verify(data: bytes, layout: Layout) -> BureauFile:
    """Parse and check that every trailer aggregate equals what the details add up to."""
    parsed = parse(data, layout)
    expected = _aggregates(parsed.details, layout)
    wrong = [f"{name} is {parsed.trailer[name]}, the details give {value}"
             for name, value in expected.items() if parsed.trailer[name] != value]
    if wrong:
        raise BureauFileError("trailer does not match: " + "; ".join(wrong))
    return parsed


def verify_manifest(folder, file_name: str, data: bytes, parsed: BureauFile, layout: Layout) -> int:
    """The batch's manifest lists each detail record's account in order, and the file's hash."""
    rows = list(csv.DictReader(io.StringIO((folder / MANIFEST).read_bytes().decode("utf-8"))))
    key = next((f.name for f in layout.records["detail"] if f.source == "account_id"), None)
    accounts = [d[key] for d in parsed.details] if key else None
    problems = []
    if len(rows) != len(parsed.details):
        problems.append(f"{len(rows)} manifest rows for {len(parsed.details)} detail records")
    for n, row in enumerate(rows):
        if row["file"] != file_name or row["sha256"] != sha256(data):
            problems.append(f"row {n + 1}: file/sha256 do not match {file_name}")
        if accounts is not None and n < len(accounts) and accounts[n] != row["account_id"]:
            problems.append(f"row {n + 1}: account {row['account_id']} but record has {accounts[n]}")
    if problems:
        raise BureauFileError("manifest does not match: " + "; ".join(problems[:10]))
    return len(rows)


# -- the day's batch -------------------------------------------------------------------------

DISPUTED = "XB"  # the compliance condition of an account under an open objection (Metro 2)


def report_accounts(engine: Engine, cycle_date: date, disputed: set[str] = frozenset(),
                    decided: Decided | None = None) -> list[dict]:
    """D's credit-report records; ``disputed``: accounts under an open bureau objection;
    ``decided``: whose decisions (the real ones unless a replay's)."""
    from arrears.db.values import as_date
    decided = decided or Decided(cycle_date)
    with engine.connect() as conn:
        rows = conn.execute(decided.sql("batches/credit_report.sql", conn.dialect.name),
                            decided.params()).all()
    from arrears.db.values import split_list
    from arrears.policy.holds import STOPS_ESCALATION
    out = []
    for aid, holder, address, cls, dpd, outstanding, fee, holds, past_due, oldest in rows:
        if split_list(holds) & STOPS_ESCALATION:
            # The policy never decides this; if a decision row says so anyway, a wrong credit
            # record is far worse than a missing one.
            log.warning("credit report: %s left out, its decision has hold(s) %s", aid, holds)
            continue
        oldest = as_date(oldest)
        out.append({"account_id": aid, "holder_name": holder, "service_address": address,
                    "customer_class": cls, "dpd": dpd, "outstanding_fen": outstanding,
                    "late_fee_fen": fee, "past_due_fen": past_due,
                    # An open bureau objection (CONTRACT §8) flags the record as disputed.
                    "compliance_condition": DISPUTED if aid in disputed else "",
                    # the first day the oldest unpaid bill was late
                    "first_delinquency": oldest + timedelta(days=1) if oldest else None})
    return out


def _disputed(engine: Engine, cycle_date: date) -> set[str]:
    """Accounts under an open credit-bureau objection on D (CONTRACT §8)."""
    from arrears.batches.objections import open_objections
    from arrears.policy import load_policy
    with engine.connect() as conn:
        return {o.account_id for o in open_objections(conn, cycle_date, load_policy())}


def paid_accounts(engine: Engine, cycle_date: date, disputed: set[str] = frozenset(),
                  decided: Decided | None = None) -> list[dict]:
    """Accounts reported before and paid in full since (CONTRACT §8): a zero-balance "paid"
    record in the first file of a later calendar month than their last report."""
    from arrears.db.values import as_date
    out = []
    decided = decided or Decided(cycle_date)
    with engine.connect() as conn:
        for aid, last in conn.execute(decided.sql("batches/paid_after_report.sql", conn.dialect.name),
                                      decided.params()).all():
            last = as_date(last)
            if (last.year, last.month) >= (cycle_date.year, cycle_date.month):
                continue  # the month's file already carried it: the next month's reports it paid
            holder, address, cls = conn.execute(text(
                "SELECT holder_name, service_address, customer_class FROM extract_accounts"
                " WHERE account_id = :a AND cycle_date <= :d ORDER BY cycle_date DESC LIMIT 1"),
                {"a": aid, "d": cycle_date}).one()
            out.append({"account_id": aid, "holder_name": holder, "service_address": address,
                        "customer_class": cls, "dpd": 0, "outstanding_fen": 0, "late_fee_fen": 0,
                        "past_due_fen": 0, "first_delinquency": None, "paid": True,
                        "compliance_condition": DISPUTED if aid in disputed else ""})
    return out


def without_expired_negative_info(engine: Engine, accounts: list[dict], cycle_date: date,
                                  as_of: date | None = None, decided: Decided | None = None
                                  ) -> list[dict]:
    """Leave out the records whose default ended more than the policy's negative-credit period
    (5 years, CONTRACT §9) before ``as_of`` (today in the utility's time zone, never before D):
    a replay of a past date must not hand the bureau negative information it may no longer hold."""
    from zoneinfo import ZoneInfo

    from arrears.db.values import as_date
    from arrears.policy.retention import load_retention, negative_info_reportable
    from arrears.settings import DEFAULT_TIMEZONE
    if as_of is None:
        tz = ZoneInfo(get_variable("arrears_timezone") or DEFAULT_TIMEZONE)
        as_of = max(cycle_date, datetime.now(tz).date())
    decided = decided or Decided(cycle_date)
    with engine.connect() as conn:
        ended = {a: as_date(d) for a, d in conn.execute(
            decided.sql("batches/default_ended.sql", conn.dialect.name), decided.params()).all()}
    if not ended:
        return accounts
    rules = load_retention()
    kept = [a for a in accounts
            if negative_info_reportable(ended.get(a["account_id"]), as_of, rules)]
    if len(kept) < len(accounts):
        log.info("credit report of %s as of %s: %d record(s) left out, their default ended more "
                 "than %d years ago", cycle_date, as_of, len(accounts) - len(kept),
                 rules.negative_credit_years)
    return kept


@dataclass
class ReportBatch:
    records: int
    amount_total: str
    file: str


def write_credit_report(engine: Engine, day_folder, cycle_date: date, replay: bool = False,
                        layout: Layout | None = None, as_of: date | None = None,
                        decided: Decided | None = None) -> ReportBatch:
    """``<day_folder>/credit_report/``: the bureau file and its manifest, published whole."""
    layout = layout or load_layout()
    decided = decided or Decided(cycle_date)
    replay = replay or decided.replay
    disputed = _disputed(engine, cycle_date)
    accounts = report_accounts(engine, cycle_date, disputed, decided)
    paid = paid_accounts(engine, cycle_date, disputed, decided)
    accounts = sorted(accounts + paid, key=lambda a: a["account_id"].encode())
    accounts = without_expired_negative_info(engine, accounts, cycle_date, as_of, decided)
    data = build_file(cycle_date, accounts, layout)
    verify(data, layout)  # never hand over a file our own reader rejects
    name = layout.name_for(cycle_date)
    with BatchFolder(day_folder, "credit_report", replay, cycle_date) as batch:
        digest = batch.add(name, data)
        rows = [(a["account_id"], name, n, format_fen(a["outstanding_fen"]), digest)
                for n, a in enumerate(accounts, start=2)]  # record 1 is the header
        final = batch.commit(csv_bytes(MANIFEST_COLUMNS, rows))
    if paid and not replay:  # a replay never writes over the real record
        with engine.begin() as conn:
            for a in paid:
                conn.execute(text("DELETE FROM bureau_paid_reports WHERE account_id = :a"
                                  " AND cycle_date = :d"), {"a": a["account_id"], "d": cycle_date})
                conn.execute(text("INSERT INTO bureau_paid_reports (account_id, cycle_date)"
                                  " VALUES (:a, :d)"), {"a": a["account_id"], "d": cycle_date})
    total = sum(a["outstanding_fen"] for a in accounts)
    return ReportBatch(len(accounts), format_fen(total), str(final / name))


# -- command line ----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m arrears.batches.bureau",
                                     description="Read back and verify a credit-bureau file.")
    parser.add_argument("command", choices=("verify", "dump"))
    parser.add_argument("file", help="the bureau file (local path or object-store URL)")
    parser.add_argument("--layout", default=None,
                        help=f"layout name under include/bureau/ or a .toml path (default {DEFAULT_LAYOUT})")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        layout = load_layout(args.layout)
        path = as_storage_path(args.file)
        data = path.read_bytes()
        parsed = verify(data, layout)
        if args.command == "dump":
            for kind, record in ([("header", parsed.header)] + [("detail", d) for d in parsed.details]
                                 + [("trailer", parsed.trailer)]):
                print(json.dumps({"record": kind, **record}, ensure_ascii=False, default=str))
            return 0
        checked = ""
        if (path.parent / MANIFEST).exists():
            rows = verify_manifest(path.parent, path.name, data, parsed, layout)
            checked = f", manifest ({rows} rows) matches"
        totals = {f.name: format_fen(parsed.trailer[f.name]) if f.type == "amount" else parsed.trailer[f.name]
                  for f in layout.records["trailer"] if f.aggregate}
        amounts = ", ".join(f"{name} {value}" for name, value in totals.items())
        print(f"OK {args.file}: layout {layout.name}, {len(parsed.details)} detail records; "
              f"trailer {amounts} agrees with the details{checked}")
        return 0
    except (LayoutError, BureauFileError, OSError) as exc:
        print(f"FAILED {args.file}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
