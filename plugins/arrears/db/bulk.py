"""Bulk inserts: PostgreSQL ``COPY`` (psycopg's ``cursor.copy``), a plain ``executemany`` on SQLite.

Row-by-row INSERTs through SQLAlchemy cost about 25 µs a row on PostgreSQL; ``COPY`` streams the
same rows at wire speed. Both run inside the caller's transaction, so all-or-nothing still holds.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

ROWS_PER_INSERT = 20_000
CSV_ROWS_PER_WRITE = 100_000
_OPEN_COPY = "arrears_open_copy"  # key in Connection.info: the RowWriter whose COPY is open


def insert_rows(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Insert positional ``rows`` (tuples in ``columns`` order) into ``table``; returns the count."""
    raw = conn.connection.driver_connection
    names = ", ".join(columns)
    count = 0
    if conn.dialect.name == "postgresql":
        _pause_stream(conn)
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        return count
    cur = raw.cursor()
    try:
        statement = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
        batch: list = []
        for row in rows:
            batch.append(row)
            if len(batch) >= ROWS_PER_INSERT:
                cur.executemany(statement, batch)
                count += len(batch)
                batch = []
        if batch:
            cur.executemany(statement, batch)
            count += len(batch)
    finally:
        cur.close()
    return count


def copy_csv(conn: Connection, table: str, columns, freeze: bool = False) -> int:
    """PostgreSQL: a pyarrow table's rows into ``table`` (columns by name; the others take their
    default) with one ``COPY`` in CSV, written by pyarrow's C++ writer a slice at a time, so the
    server parses one slice while the next is written. ``freeze``: the rows are written frozen
    (only for a table created in this transaction), so the index build and ANALYZE that read
    them next do not rewrite every page to set its hint bits."""
    import pyarrow.csv as pcsv
    import pyarrow as pa
    _pause_stream(conn)
    names = ", ".join(columns.column_names)
    options = pcsv.WriteOptions(include_header=False)
    with conn.connection.driver_connection.cursor() as cur, \
            cur.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT csv{', FREEZE' if freeze else ''})") as copy:
        for start in range(0, columns.num_rows, CSV_ROWS_PER_WRITE):
            sink = pa.BufferOutputStream()
            pcsv.write_csv(columns.slice(start, CSV_ROWS_PER_WRITE), sink, options)
            copy.write(sink.getvalue())
    return columns.num_rows


def _pause_stream(conn: Connection) -> None:
    """Close the streaming COPY open on ``conn``, if any: a connection runs one statement at a
    time (the stream reopens on its next row)."""
    open_batch = conn.info.get(_OPEN_COPY)
    if open_batch is not None:
        open_batch.close_copy()


class RowWriter:
    """Rows for one table, written with :func:`insert_rows` every ``chunk`` rows so memory stays
    flat however long the file is.

    ``stream=True`` (PostgreSQL only) keeps one ``COPY`` open and writes each row as it comes,
    so the server indexes rows while Python is still reading the file. Use it for the one big
    table of a loop; other batches on the same connection pause it when they flush. Use the
    batch as a context manager so an error aborts an open ``COPY``.
    """

    def __init__(self, conn: Connection, table: str, columns: Sequence[str], chunk: int = ROWS_PER_INSERT,
                 stream: bool = False):
        self.conn, self.table, self.columns, self.chunk = conn, table, tuple(columns), chunk
        self.stream = stream and conn.dialect.name == "postgresql"
        self.rows: list[tuple] = []
        self._cursor = self._context = self._copy = None

    def add(self, row: Sequence) -> None:
        if self.stream:
            if self._copy is None:
                self._open_copy()
            self._copy.write_row(row)
            return
        self.rows.append(row)
        if len(self.rows) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        if self.stream:
            self.close_copy()
        elif self.rows:
            insert_rows(self.conn, self.table, self.columns, self.rows)
            self.rows = []

    def _open_copy(self) -> None:
        _pause_stream(self.conn)
        self._cursor = self.conn.connection.driver_connection.cursor()
        self._context = self._cursor.copy(f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN")
        self._copy = self._context.__enter__()
        self.conn.info[_OPEN_COPY] = self

    def close_copy(self, error: BaseException | None = None) -> None:
        if self._copy is None:
            return
        context, cursor = self._context, self._cursor
        self._cursor = self._context = self._copy = None
        self.conn.info.pop(_OPEN_COPY, None)
        try:
            # With an error, psycopg ends the COPY with CopyFail: the transaction rolls back.
            context.__exit__(type(error) if error else None, error, None)
        finally:
            cursor.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.flush()
        elif self.stream:
            self.close_copy(exc)
