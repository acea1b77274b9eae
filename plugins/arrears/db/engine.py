from __future__ import annotations

import threading
import weakref
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event


@lru_cache(maxsize=8)
def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")   # readers never block the cycle's writer
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
        return engine
    return create_engine(url, pool_pre_ping=True)


# Engines whose schema this process already brought up to date: a task calls connect() many
# times, and each migrate() is a transaction (and on PostgreSQL an advisory lock) for nothing.
_migrated: weakref.WeakSet[Engine] = weakref.WeakSet()
_migrating = threading.Lock()


def connect(url: str) -> Engine:
    """The engine with the schema migrated to the latest version (once per process)."""
    engine = make_engine(url)
    if engine in _migrated:
        return engine
    from arrears.db.migrate import migrate
    with _migrating:
        if engine not in _migrated:
            migrate(engine)
            _migrated.add(engine)
    return engine
