"""SQL lives in include/sql/*.sql; statements are separated by a line ending in ``;``."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy import Connection, text

from arrears.paths import SQL_DIR


# Byte-order collation, so that Python and the database sort account ids alike.
_COLLATE_BINARY = {"sqlite": "COLLATE BINARY", "postgresql": 'COLLATE "C"'}


@lru_cache(maxsize=128)
def sql(name: str, dialect: str = "sqlite"):
    """The one statement in ``include/sql/<name>`` as a SQLAlchemy ``text``; ``COLLATE BINARY``
    is spelled as the dialect wants it. A twin ``<name>.<dialect>.sql`` replaces the file on that
    dialect (as for migrations), for a statement the two databases spell differently."""
    path = SQL_DIR / name
    twin = path.with_suffix(f".{dialect}.sql")
    body = (twin if twin.is_file() else path).read_text(encoding="utf-8").strip().rstrip(";")
    return text(spelled(body, dialect))


def spelled(statement: str, dialect: str) -> str:
    """``COLLATE BINARY`` as the dialect spells it."""
    return statement.replace("COLLATE BINARY", _COLLATE_BINARY[dialect])


def split_statements(script: str) -> list[str]:
    statements, current = [], []
    for line in script.splitlines():
        if line.strip().startswith("--") and not current:
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip().rstrip(";"))
            current = []
    if "".join(current).strip():
        statements.append("\n".join(current).strip())
    return [s for s in statements if s]


def run_script(conn: Connection, path: Path, params: dict | None = None) -> None:
    for statement in split_statements(path.read_text(encoding="utf-8")):
        conn.execute(text(statement), params or {})
