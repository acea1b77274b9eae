"""Forward-only schema migrations: include/sql/migrations/NNNN_name.sql, applied in order.

A file may have a dialect-specific twin ``NNNN_name.postgresql.sql`` that replaces it there.
"""
from __future__ import annotations

import re

from sqlalchemy import Engine, text

from arrears.db.sqlfiles import run_script
from arrears.paths import SQL_DIR

MIGRATIONS = SQL_DIR / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def pending(applied: set[int], dialect: str):
    for path in sorted(MIGRATIONS.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match or int(match.group(1)) in applied:
            continue
        twin = path.with_name(path.stem + f".{dialect}.sql")
        yield int(match.group(1)), twin if twin.exists() else path


def migrate(engine: Engine) -> list[int]:
    """Apply what is missing, each migration in its own transaction; returns what ran."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # One migrator at a time when several workers start together.
            conn.execute(text("SELECT pg_advisory_xact_lock(4242)"))
        conn.execute(text("CREATE TABLE IF NOT EXISTS schema_migrations ("
                          " version INTEGER PRIMARY KEY, name TEXT NOT NULL)"))
        applied = {row[0] for row in conn.execute(text("SELECT version FROM schema_migrations"))}
        ran = []
        for version, path in pending(applied, engine.dialect.name):
            run_script(conn, path)
            conn.execute(text("INSERT INTO schema_migrations (version, name) VALUES (:v, :n)"),
                         {"v": version, "n": path.name})
            ran.append(version)
    return ran
