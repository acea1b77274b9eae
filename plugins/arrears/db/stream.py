"""Reading a big result as plain tuples, a fetch at a time, straight from the driver.

The decisions read nine account-ordered streams of about a million rows each; SQLAlchemy's
result machinery (a ``Row`` per row, its processors, ``fetchone`` through three layers) cost
several microseconds a row, as much as deciding the account. Here the statement is compiled
once by SQLAlchemy (its parameters in the driver's style) and run on the driver's own cursor:
on PostgreSQL a named (server-side) cursor fetching ``per_fetch`` rows a round trip, on SQLite a
plain cursor (its rows are produced as they are read). Rows are the driver's tuples; the
columns named in ``dates`` come as ``date`` on both databases (PostgreSQL's driver types them,
SQLite's text goes through ``db.values.as_date``).
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from sqlalchemy import Connection

from arrears.db.values import as_date

_names = itertools.count()


def tuples(conn: Connection, statement, params: dict, per_fetch: int = 5000,
           dates: Sequence[int] = ()) -> Iterator[tuple]:
    """The rows of ``statement`` (a SQLAlchemy ``text``) with ``params``, in the connection's
    current transaction; the columns at the positions ``dates`` as ``date`` (or None). The cursor
    is closed when the iterator is exhausted or closed."""
    rows = _rows(conn, statement, params, per_fetch)
    if dates and conn.dialect.name == "sqlite":
        return (tuple(as_date(v) if i in dates else v for i, v in enumerate(row)) for row in rows)
    return rows


def _rows(conn: Connection, statement, params: dict, per_fetch: int) -> Iterator[tuple]:
    compiled = statement.compile(dialect=conn.dialect)
    values = compiled.construct_params(params)
    if compiled.positiontup is not None:  # qmark / numeric styles (SQLite): values in order
        values = tuple(values[name] for name in compiled.positiontup)
    raw = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        cursor = raw.cursor(name=f"arrears_stream_{next(_names)}")
        cursor.itersize = per_fetch
    else:
        cursor = raw.cursor()
        cursor.arraysize = per_fetch
    try:
        cursor.execute(compiled.string, values)
        while batch := cursor.fetchmany(per_fetch):
            yield from batch
    finally:
        cursor.close()
