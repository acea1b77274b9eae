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
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import closing
from dataclasses import dataclass, field
from itertools import chain, islice
from operator import itemgetter
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text

from arrears.db.bulk import RowWriter, copy_csv
from arrears.db.sqlfiles import run_script
from arrears.ingest import validate as v
from arrears.money import quoted
from arrears.paths import SQL_DIR
from arrears.ingest.read import Columns, CsvFile, FileError, sha256_of

if TYPE_CHECKING:
    import pyarrow as pa

    from arrears.ingest import screen

log = logging.getLogger(__name__)
KEYS_PER_LOOKUP = 50_000  # keys looked up at once for payments and case events
# Their rows validated ahead while the server writes D's bills (kept in memory until then).
ROWS_READ_AHEAD = 4 * KEYS_PER_LOOKUP


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
        # PostgreSQL: D's extract goes into plain tables, indexed and attached as D's partitions
        # at the end (migration 0030), and the two big files are screened by whole columns.
        self.partitioned = conn.dialect.name == "postgresql"
        self.account_ids: pa.Array | None = None  # the accounts loaded, when screened
        # One statement at a time runs on the connection in this thread while Python reads
        # and screens the next file (the server and our process each have a core).
        self._pool = ThreadPoolExecutor(max_workers=1) if self.partitioned else None
        self._running: Future | None = None

    def in_background(self, *statements: Callable[[], object]) -> None:
        """Run ``statements`` on the connection in the background; nothing else may use the
        connection until settle_db()."""
        self.settle_db()
        self._running = self._pool.submit(lambda: [run() for run in statements])

    def settle_db(self) -> None:
        """Wait for the background statements (raising their error): the connection is free."""
        running, self._running = self._running, None
        if running is not None:
            running.result()

    def close(self) -> None:
        """After an error too: no statement may still run when the transaction ends."""
        if self._running is not None:
            wait([self._running])
            self._running = None
        if self._pool is not None:
            self._pool.shutdown()

    def quarantined(self, row: tuple) -> None:
        if len(self.quarantine.rows) + 1 >= self.quarantine.chunk:
            self.settle_db()  # this row flushes the quarantine
        self.quarantine.add(row)

    def source(self, name: str) -> CsvFile:
        return CsvFile(self.folder / name, v.REQUIRED_COLUMNS[name], self.encoding,
                       optional=name in v.OPTIONAL_FILES)

    def target(self, table: str) -> str:
        return day_table(table, self.cycle_date) if self.partitioned else table

    def rows(self, name: str, clean: Callable[[dict], dict], source: CsvFile | None = None):
        """Validated rows of one file; bad rows and later duplicate keys go to quarantine."""
        seen: set[str] = set()
        good = bad = 0
        self.result.rows[name] = self.result.quarantined[name] = 0
        source = source or self.source(name)
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
                self.quarantined((self.cycle_date, name, line, str(exc), _raw(fields, len(header))))
                continue
            good += 1
            if good % 250_000 == 0:
                log.info("%s: %d rows read", name, good)
            yield line, row, record
        # Added, not assigned: load_remembered may have rejected some of them already.
        self.result.rows[name] += good
        self.result.quarantined[name] += bad

    def reject(self, name: str, line: int, row: dict, reason: str) -> None:
        self.result.rows[name] -= 1
        self.result.quarantined[name] += 1
        fields = [row.get(k) or "" for k in row]
        self.quarantined((self.cycle_date, name, line, reason, _raw(fields, len(fields))))

    def clear_previous_delivery(self) -> None:
        """Forget what D's earlier delivery said, and only that (CONTRACT §1 re-delivery)."""
        if self.partitioned:
            for table in _EXTRACT_TABLES:
                self.conn.execute(text(f"DROP TABLE IF EXISTS {self.target(table)}"))
        run_script(self.conn, SQL_DIR / "ingest" / "clear_delivery.sql", {"d": self.cycle_date})
        if self.partitioned:
            for table in _EXTRACT_TABLES:
                # Unindexed while it loads; the check lets ATTACH skip its scan of the rows.
                day = self.target(table)
                self.conn.execute(text(
                    f"CREATE TABLE {day} (LIKE {table} INCLUDING DEFAULTS,"
                    f" CONSTRAINT {day}_day CHECK (cycle_date = '{self.cycle_date}'))"))
                self.conn.execute(text(f"ALTER TABLE {day} ALTER COLUMN cycle_date"
                                       f" SET DEFAULT '{self.cycle_date}'"))

    def finish_day(self, table: str, clean=None) -> None:
        """In the background: the screened rows ``clean`` (if any) COPYed into D's table of
        ``table``, then D's table indexed (PostgreSQL; SQLite's tables keep their indexes)."""
        if clean is not None:
            self.in_background(lambda: copy_csv(self.conn, self.target(table), clean, freeze=True),
                               lambda: self.index_day(table))
        elif self.partitioned:
            self.in_background(lambda: self.index_day(table))

    def index_day(self, table: str) -> None:
        """D's table of ``table`` indexed as the partitioned table is: one sort per index."""
        day = self.target(table)
        self.conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        if table == "extract_accounts":
            self.conn.execute(text(f"ALTER TABLE {day} ADD PRIMARY KEY (cycle_date, account_id)"))
        else:
            self.conn.execute(text(f"ALTER TABLE {day} ADD PRIMARY KEY (cycle_date, bill_id)"))
            self.conn.execute(text(f"CREATE INDEX {day}_account ON {day} (cycle_date, account_id)"))
        # Fresh statistics, or the planner takes a million-row extract for a few rows.
        self.conn.execute(text(f"ANALYZE {day}"))

    def attach_day(self) -> None:
        """D's tables (indexed by now) attached as D's partitions."""
        if not self.partitioned:
            return
        self.settle_db()
        for table in _EXTRACT_TABLES:
            day = self.target(table)
            self.conn.execute(text(f"ALTER TABLE {day} ALTER COLUMN cycle_date DROP DEFAULT"))
            self.conn.execute(text(f"ALTER TABLE {table} ATTACH PARTITION {day}"
                                   f" FOR VALUES IN ('{self.cycle_date}')"))
            self.conn.execute(text(f"ALTER TABLE {day} DROP CONSTRAINT {day}_day"))

    def columns(self, source: CsvFile) -> Columns | None:
        return source.columns() if self.partitioned else None

    def screened(self, name: str, columns: Columns, passed: screen.Screened,
                 clean: Callable[[dict], dict]) -> tuple[pa.Array, list[tuple[dict, dict]]]:
        """The file's good rows: those the screen passed (a mask of the table's rows), and
        those the row function accepted, as (row, record); the row function's bad rows and
        every later row of a key go to quarantine as rows() sends them."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        d, header, table, key_column = self.cycle_date, columns.header, columns.table, v.KEY_COLUMN[name]
        width = len(header)
        rest = pc.indices_nonzero(pc.invert(passed.passes))
        todo = [(int(columns.lines[i]), list(r.values()))
                for i, r in zip(rest.to_pylist(), table.take(rest).to_pylist())]
        accepted: list[tuple[int, list[str], dict, dict]] = []
        bad = 0
        for line, fields in sorted(todo + columns.other):
            try:
                v.check_fields(header, fields)
                row = dict(zip(header, fields))
                if len(fields) < width:
                    row.update(dict.fromkeys(header[len(fields):]))
                accepted.append((line, fields, row, clean(row)))
            except v.RowError as exc:
                bad += 1
                self.quarantined((d, name, line, str(exc), _raw(fields, width)))
        # The first good row of a key wins, whichever way it was found good: one hash count of
        # the keys, then the few repeated ones in Python.
        keys = pc.filter(passed.records[key_column], passed.passes)
        more = pa.array([a[3][key_column] for a in accepted], pa.string())
        counted = pc.value_counts(pa.chunked_array([*keys.chunks, more], pa.string()))
        repeated = pc.filter(counted.field("values"), pc.greater(counted.field("counts"), 1))
        later: set[int] = set()
        if len(repeated):
            firsts: dict[str, int] = {}
            hit = pc.and_(passed.passes, pc.is_in(passed.records[key_column], value_set=repeated))
            found = pc.indices_nonzero(hit).to_numpy()
            seen = list(zip(pc.take(passed.records[key_column], found).to_pylist(),
                            columns.lines[found].tolist()))
            seen += [(a[3][key_column], a[0]) for a in accepted]
            for key, line in sorted(seen, key=lambda item: item[1]):
                if firsts.setdefault(key, line) != line:
                    later.add(line)
        keep = passed.passes
        if later:
            by_line = {a[0]: a[1] for a in accepted}
            for line in sorted(later):
                at = int(np.searchsorted(columns.lines, line))  # lines ascend
                fields = by_line.get(line) or list(table.slice(at, 1).to_pylist()[0].values())
                key = fields[header.index(key_column)].strip()
                self.quarantined((d, name, line, f"duplicate {key_column} {quoted(key)} (the "
                                  f"first row wins)", _raw(fields, width)))
            keep = pc.and_(keep, pc.invert(pc.is_in(pa.array(columns.lines), value_set=pa.array(
                sorted(later), pa.int64()))))
        rows = [(row, record) for line, _, row, record in accepted if line not in later]
        self.result.rows[name] = (pc.sum(keep).as_py() or 0) + len(rows)
        self.result.quarantined[name] = bad + len(later)
        return keep, rows

    def load_accounts(self) -> set[str]:
        import pyarrow as pa

        from arrears.ingest import screen
        name, table = "accounts.csv", "extract_accounts"
        ids: set[str] = set()
        d, values = self.cycle_date, itemgetter(*_ACCOUNT_COLUMNS)
        source = self.source(name)
        columns = self.columns(source)
        with RowWriter(self.conn, self.target(table), ("cycle_date", *_ACCOUNT_COLUMNS),
                       stream=True) as batch:
            if columns is None:
                for _, row, record in self.rows(name, v.account_row, source):
                    ids.add(record["account_id"])
                    if any((row.get(c) or "").strip() and not record[c] for c in _ADDRESS_COLUMNS):
                        self.result.contact_gaps += 1
                    batch.add((d, *values(record)))
            else:
                passed = screen.accounts(columns.table, columns.header)
                keep, rows = self.screened(name, columns, passed, v.account_row)
                self.result.contact_gaps += screen.contact_gaps(columns, passed, keep,
                                                                _ADDRESS_COLUMNS)
                for row, record in rows:
                    if any((row.get(c) or "").strip() and not record[c] for c in _ADDRESS_COLUMNS):
                        self.result.contact_gaps += 1
                    batch.add((d, *values(record)))
        if columns is None:
            self.finish_day(table)
            return ids
        clean = passed.kept(keep)
        del columns, passed
        self.finish_day(table, clean)
        self.account_ids = pa.concat_arrays([clean.column("account_id").combine_chunks(), pa.array(
            [record["account_id"] for _, record in rows], pa.string())])
        return set(self.account_ids.to_pylist())

    def load_bills(self, accounts: set[str]) -> Mapping[str, str]:
        import pyarrow as pa
        import pyarrow.compute as pc

        from arrears.ingest import screen
        name, table = "open_items.csv", "extract_bills"
        bills: dict[str, str] = {}
        d, values = self.cycle_date, itemgetter(*_BILL_COLUMNS)
        source = self.source(name)
        columns = self.columns(source) if self.account_ids is not None else None
        if columns is not None:
            passed = screen.bills(columns.table, columns.header, self.account_ids)
        self.settle_db()
        with RowWriter(self.conn, self.target(table), ("cycle_date", *_BILL_COLUMNS),
                       stream=True) as batch:
            if columns is None:
                for _, _, record in self.rows(name, lambda r: v.bill_row(r, accounts), source):
                    bills[record["bill_id"]] = record["account_id"]
                    batch.add((d, *values(record)))
            else:
                keep, rows = self.screened(name, columns, passed, lambda r: v.bill_row(r, accounts))
                for _, record in rows:
                    bills[record["bill_id"]] = record["account_id"]
                    batch.add((d, *values(record)))
        if columns is None:
            self.finish_day(table)
            return bills
        clean = passed.kept(keep)
        del columns, passed
        self.finish_day(table, clean)
        # Payments ask only for the bills they name: those, not a dict of a million bills.
        named = self.bills_named_by_payments()
        if named:
            pick = pc.is_in(clean.column("bill_id"), value_set=pa.array(sorted(named), pa.string()))
            found = clean.filter(pick)
            bills.update(zip(found.column("bill_id").to_pylist(), found.column("account_id").to_pylist()))
        return bills

    def bills_named_by_payments(self) -> set[str]:
        """The bill ids payments.csv names, read as load_remembered will read them."""
        name = "payments.csv"
        if not (self.folder / name).exists():
            return set()
        named = set()
        source = self.source(name)
        for _, fields in source.rows():
            if "bill_id" in source.header and len(fields) > source.header.index("bill_id"):
                named.add((fields[source.header.index("bill_id")] or "").strip())
        named.discard("")
        return named

    def read_ahead(self, name: str, clean: Callable[[dict], dict]) -> tuple[Iterator, bool]:
        """The file's first ROWS_READ_AHEAD validated rows read now (while the connection is
        busy in the background), then the rest; and whether that was the whole file."""
        if not (self.folder / name).exists():
            return iter(()), True
        rows = self.rows(name, clean)
        ahead = list(islice(rows, ROWS_READ_AHEAD))
        return chain(ahead, rows), len(ahead) < ROWS_READ_AHEAD

    def load_remembered(self, name: str, table: str, key: str, clean: Callable[[dict], dict],
                        compare: tuple[str, ...], sightings: RowWriter,
                        rows: Iterator | None = None) -> None:
        """Payments / case events: insert new keys, accept identical repeats, quarantine others.
        ``rows``: the file's rows from read_ahead."""
        if not (self.folder / name).exists():
            self.result.rows[name] = self.result.quarantined[name] = 0
            return
        batch = RowWriter(self.conn, table, (*compare, "first_seen"))
        pending: list[tuple[int, dict, dict]] = []

        def settle():
            self.settle_db()
            keys = [rec[key] for _, _, rec in pending]
            known = {}
            if self.partitioned:  # one array parameter, not 500 to parse
                found = self.conn.execute(text(
                    f"SELECT {', '.join(compare)} FROM {table} WHERE {key} = ANY(:keys)"),
                    {"keys": keys}).mappings()
                known.update({r[key]: r for r in found})
                keys = []
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

        for item in self.rows(name, clean) if rows is None else rows:
            pending.append(item)
            if len(pending) >= KEYS_PER_LOOKUP:
                settle()
        settle()


_EXTRACT_TABLES = ("extract_accounts", "extract_bills")


def day_table(table: str, cycle_date: date) -> str:
    """D's partition of an extract table (PostgreSQL, migration 0030)."""
    return f"{table}_{cycle_date:%Y%m%d}"


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
        with engine.begin() as conn, closing(_Loader(conn, folder, cycle_date, ZoneInfo(tz),
                                                     encoding)) as loader:
            loader.clear_previous_delivery()
            accounts = loader.load_accounts()
            bills = loader.load_bills(accounts)
            payment = lambda r: v.payment_row(r, accounts, bills, cycle_date, loader.tz)  # noqa: E731
            event = lambda r: v.event_row(r, accounts)  # noqa: E731
            payments = events = None
            if loader.partitioned:
                # Validated while D's bills are copied and indexed; the events only once every
                # payment was read, so a fatal error in payments.csv still comes first.
                payments, whole = loader.read_ahead("payments.csv", payment)
                if whole:
                    events, _ = loader.read_ahead("case_events.csv", event)
            loader.load_remembered(
                "payments.csv", "payments", "payment_id", payment, _PAYMENT_COLUMNS,
                RowWriter(conn, "payment_sightings", ("cycle_date", "payment_id")), payments)
            loader.load_remembered("case_events.csv", "case_events", "event_id", event,
                                   _EVENT_COLUMNS,
                                   RowWriter(conn, "case_event_sightings", ("cycle_date", "event_id")),
                                   events)
            loader.settle_db()
            run_script(conn, SQL_DIR / "ingest" / "resighted.sql", {"d": cycle_date})
            loader.quarantine.flush()
            loader.attach_day()
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
