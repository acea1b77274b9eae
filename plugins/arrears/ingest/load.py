"""Load one landing folder into the collection database, all or nothing.

The extract of D (accounts, open items, quarantine, sightings) is replaced whole, so a
re-delivered folder gives the same state. Payments and case events are remembered by key across
cycles: a key seen again with the same content is the same record; with other content the later
row is quarantined. Each delivery's sightings of them are kept, so re-delivering D removes only
what D alone said: a payment or event that another day's delivery also carried survives.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, text

from arrears.db.bulk import RowWriter
from arrears.db.sqlfiles import run_script
from arrears.ingest import validate as v
from arrears.money import quoted
from arrears.paths import SQL_DIR
from arrears.ingest.read import CsvFile, FileError, sha256_of

log = logging.getLogger(__name__)
KEYS_PER_LOOKUP = 5000  # keys looked up per round trip for payments and case events


class IngestError(RuntimeError):
    """The delivery cannot be ingested; nothing was changed."""


@dataclass
class IngestResult:
    cycle_date: date
    fingerprint: str
    rows: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    contact_gaps: int = 0

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


RAW_MAX = 8192  # characters of a quarantined row kept for people to read


def _raw(fields: list[str], width: int) -> str:
    """The row as delivered (padded to the header), storable anywhere: NUL shown as \\x00 (no
    database takes it in text) and a huge row cut short."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields + [""] * (width - len(fields)))
    raw = out.getvalue().replace("\x00", "\\x00")
    if len(raw) > RAW_MAX:
        raw = raw[:RAW_MAX] + f"... [{len(raw) - RAW_MAX} more characters]"
    return raw


class _Loader:
    def __init__(self, conn: Connection, folder: Path, cycle_date: date, tz: ZoneInfo,
                 encoding: str | None):
        self.conn, self.folder, self.cycle_date, self.tz = conn, folder, cycle_date, tz
        self.encoding = encoding
        self.result = IngestResult(cycle_date, "")
        self.quarantine = RowWriter(conn, "quarantine", ("cycle_date", "file", "line", "reason", "raw"))

    def rows(self, name: str, clean: Callable[[dict], dict]):
        """Validated rows of one file; bad rows and later duplicate keys go to quarantine."""
        seen: set[str] = set()
        good = bad = 0
        self.result.rows[name] = self.result.quarantined[name] = 0
        source = CsvFile(self.folder / name, v.REQUIRED_COLUMNS[name], self.encoding,
                         optional=name in v.OPTIONAL_FILES)
        key_column = v.KEY_COLUMN[name]
        for line, fields in source.rows():
            header = source.header
            try:
                v.check_fields(header, fields)
                row = dict(zip(header, fields))
                if len(fields) < len(header):
                    row.update(dict.fromkeys(header[len(fields):]))
                record = clean(row)
                key = record[key_column]
                if key in seen:
                    raise v.RowError(f"duplicate {key_column} {quoted(key)} (the first row wins)")
                seen.add(key)
            except v.RowError as exc:
                bad += 1
                self.quarantine.add((self.cycle_date, name, line, str(exc),
                                     _raw(fields, len(header))))
                continue
            good += 1
            if good % 250_000 == 0:
                log.info("%s: %d rows read", name, good)
            yield line, row, record
        self.result.rows[name], self.result.quarantined[name] = good, bad

    def reject(self, name: str, line: int, row: dict, reason: str) -> None:
        self.result.rows[name] -= 1
        self.result.quarantined[name] += 1
        fields = [row.get(k) or "" for k in row]
        self.quarantine.add((self.cycle_date, name, line, reason, _raw(fields, len(fields))))

    def clear_previous_delivery(self) -> None:
        """Forget what D's earlier delivery said, and only that (CONTRACT §1 re-delivery)."""
        run_script(self.conn, SQL_DIR / "ingest" / "clear_delivery.sql", {"d": self.cycle_date})

    def load_accounts(self) -> set[str]:
        ids: set[str] = set()
        d, values = self.cycle_date, itemgetter(*_ACCOUNT_COLUMNS)
        with RowWriter(self.conn, "extract_accounts", ("cycle_date", *_ACCOUNT_COLUMNS),
                   stream=True) as batch:
            for _, row, record in self.rows("accounts.csv", v.account_row):
                ids.add(record["account_id"])
                if any((row.get(c) or "").strip() and not record[c] for c in _ADDRESS_COLUMNS):
                    self.result.contact_gaps += 1
                batch.add((d, *values(record)))
        return ids

    def load_bills(self, accounts: set[str]) -> dict[str, str]:
        bills: dict[str, str] = {}
        d, values = self.cycle_date, itemgetter(*_BILL_COLUMNS)
        with RowWriter(self.conn, "extract_bills", ("cycle_date", *_BILL_COLUMNS), stream=True) as batch:
            for _, _, record in self.rows("open_items.csv", lambda r: v.bill_row(r, accounts)):
                bills[record["bill_id"]] = record["account_id"]
                batch.add((d, *values(record)))
        return bills

    def load_remembered(self, name: str, table: str, key: str, clean: Callable[[dict], dict],
                        compare: tuple[str, ...], sightings: RowWriter) -> None:
        """Payments / case events: insert new keys, accept identical repeats, quarantine others."""
        if not (self.folder / name).exists():
            self.result.rows[name] = self.result.quarantined[name] = 0
            return
        batch = RowWriter(self.conn, table, (*compare, "first_seen"))
        pending: list[tuple[int, dict, dict]] = []

        def settle():
            keys = [rec[key] for _, _, rec in pending]
            known = {}
            for i in range(0, len(keys), 500):
                part = keys[i:i + 500]
                params = {f"k{j}": k for j, k in enumerate(part)}
                found = self.conn.execute(text(
                    f"SELECT {', '.join(compare)} FROM {table} WHERE {key} IN "
                    f"({', '.join(':' + p for p in params)})"), params).mappings()
                known.update({r[key]: r for r in found})
            for line, row, rec in pending:
                old = known.get(rec[key])
                if old is not None and any(_norm(old[c]) != _norm(rec[c]) for c in compare):
                    self.reject(name, line, row, f"{key} {quoted(rec[key])} was recorded before "
                                                 f"with other content (the first sighting wins)")
                    continue
                if old is None:
                    batch.add((*(rec[c] for c in compare), self.cycle_date))
                sightings.add((self.cycle_date, rec[key]))
            batch.flush()
            sightings.flush()
            pending.clear()

        for item in self.rows(name, clean):
            pending.append(item)
            if len(pending) >= KEYS_PER_LOOKUP:
                settle()
        settle()


_ACCOUNT_COLUMNS = ("account_id", "holder_name", "customer_class", "service_address", "email",
                    "mobile", "language", "protections", "opt_out", "wechat_openid", "app_user_id")
_ADDRESS_COLUMNS = ("email", "mobile", "wechat_openid", "app_user_id")  # invalid: a contact gap
_BILL_COLUMNS = ("bill_id", "account_id", "bill_period", "amount_fen", "due_date")
_PAYMENT_COLUMNS = ("payment_id", "account_id", "bill_id", "amount_fen", "paid_at", "paid_on")
_EVENT_COLUMNS = ("event_id", "account_id", "event_type", "effective_date", "amount_fen",
                  "until_date", "note", "instalments")


def _norm(value) -> str:
    return "" if value is None else str(value)


def ingest_delivery(engine: Engine, folder: Path, cycle_date: date, tz: str = "Asia/Shanghai",
                    encoding: str | None = None) -> IngestResult:
    """Load ``<landing>/<D>/`` for cycle date D; raise IngestError and change nothing if a file
    is unreadable or lacks a required column. ``encoding`` None is undeclared: UTF-8, and a file
    that reads as GB18030 mojibake fails (read.CsvFile)."""
    for name in ("accounts.csv", "open_items.csv"):
        if not (folder / name).is_file():
            raise IngestError(f"{folder}: required file {name} is missing")
    present = sorted(p.name for p in folder.glob("*.csv") if p.name in v.REQUIRED_COLUMNS)
    files = {name: {"sha256": sha256_of(folder / name)} for name in present}
    fingerprint = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    try:
        with engine.begin() as conn:
            loader = _Loader(conn, folder, cycle_date, ZoneInfo(tz), encoding)
            loader.clear_previous_delivery()
            accounts = loader.load_accounts()
            bills = loader.load_bills(accounts)
            loader.load_remembered(
                "payments.csv", "payments", "payment_id",
                lambda r: v.payment_row(r, accounts, bills, cycle_date, loader.tz),
                _PAYMENT_COLUMNS,
                RowWriter(conn, "payment_sightings", ("cycle_date", "payment_id")))
            loader.load_remembered("case_events.csv", "case_events", "event_id",
                                   lambda r: v.event_row(r, accounts), _EVENT_COLUMNS,
                                   RowWriter(conn, "case_event_sightings", ("cycle_date", "event_id")))
            run_script(conn, SQL_DIR / "ingest" / "resighted.sql", {"d": cycle_date})
            loader.quarantine.flush()
            if conn.dialect.name == "postgresql":
                # Fresh statistics, or the planner takes a million-row extract for a few rows.
                conn.execute(text("ANALYZE extract_accounts, extract_bills"))
            result = loader.result
            result.fingerprint = fingerprint
            for name in present:
                files[name].update(rows=result.rows.get(name, 0),
                                   quarantined=result.quarantined.get(name, 0))
            conn.execute(text("INSERT INTO deliveries (cycle_date, fingerprint, files, ingested_at)"
                              " VALUES (:cycle_date, :fingerprint, :files, :ingested_at)"),
                         {"cycle_date": cycle_date, "fingerprint": fingerprint,
                          "files": json.dumps(files, sort_keys=True),
                          "ingested_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    except FileError as exc:
        raise IngestError(f"{folder}/{exc} - nothing was loaded; when fixed, clear the ingest "
                          f"task to retry") from None
    log.info("ingested %s: rows %s, quarantined %s", folder, result.rows, result.quarantined)
    return result
