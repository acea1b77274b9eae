from __future__ import annotations

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


def connect(url: str) -> Engine:
    """The engine with the schema migrated to the latest version."""
    from arrears.db.migrate import migrate
    engine = make_engine(url)
    migrate(engine)
    return engine
