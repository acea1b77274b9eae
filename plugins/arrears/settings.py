"""Runtime settings from Airflow variables and connections (CONTRACT §4).

Inside Airflow the values come from Airflow's variables/connections (which include the
``AIRFLOW_VAR_*`` / ``AIRFLOW_CONN_*`` environment variables); outside Airflow (the CLI, tests)
from those environment variables directly.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from urllib.parse import quote

from arrears.paths import REPO_ROOT

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_CONTACT_WINDOW = "08:00-21:00"


class SettingsError(ValueError):
    """A variable or connection that is set to something unusable."""


def get_variable(name: str, default: str | None = None) -> str | None:
    env = os.environ.get(f"AIRFLOW_VAR_{name.upper()}")
    if env is not None:
        return env
    try:
        from airflow.sdk import Variable
        return Variable.get(name, default=default)
    except Exception:  # noqa: BLE001 - outside a task there is no API server to ask
        return default


def get_connection(conn_id: str):
    """The Airflow connection, or None when it is not configured anywhere."""
    if not os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"):
        try:
            from airflow.sdk import BaseHook
            return BaseHook.get_connection(conn_id)
        except Exception:  # noqa: BLE001 - not configured (or no Airflow): use the default
            return None
    from airflow.models.connection import Connection
    raw = os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"].strip()
    if raw.startswith("{"):
        return Connection(conn_id=conn_id, **json.loads(raw))
    return Connection(conn_id=conn_id, uri=raw)


def parse_window(text: str) -> tuple[time, time]:
    """``"08:00-21:00"`` -> (08:00, 21:00); ``24:00`` is allowed as the end."""
    try:
        start, end = (part.strip() for part in text.split("-"))
        t0 = time.fromisoformat(start)
        t1 = time.max if end == "24:00" else time.fromisoformat(end)
    except ValueError:
        raise SettingsError(
            f"contact window {text!r} is not HH:MM-HH:MM (set arrears_contact_window)") from None
    if t1 <= t0:
        raise SettingsError(f"contact window {text!r} ends before it starts")
    return t0, t1


def database_url(conn) -> str:
    """A SQLAlchemy URL for the ``arrears_db`` connection (sqlite or postgres)."""
    if conn is None:
        path = Path(os.environ.get("ARREARS_DEFAULT_DB", REPO_ROOT / "var" / "arrears.db"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    kind = (conn.conn_type or "").lower()
    if kind == "sqlite":
        return f"sqlite:///{conn.host}"
    if kind in ("postgres", "postgresql"):
        auth = quote(conn.login or "", safe="")
        if conn.password:
            auth += ":" + quote(conn.password, safe="")
        host = f"{conn.host or 'localhost'}:{conn.port or 5432}"
        return f"postgresql+psycopg://{auth + '@' if auth else ''}{host}/{conn.schema or ''}"
    raise SettingsError(
        f"connection arrears_db has type {conn.conn_type!r}: use sqlite or postgres")


@dataclass(frozen=True)
class Settings:
    landing: Path
    outbox: Path
    timezone: str
    contact_window: tuple[time, time]
    db_url: str
    portfolio: str = "default"

    @classmethod
    def load(cls) -> Settings:
        return cls(
            landing=Path(get_variable("arrears_landing") or REPO_ROOT / "var" / "landing"),
            outbox=Path(get_variable("arrears_outbox") or REPO_ROOT / "var" / "outbox"),
            timezone=get_variable("arrears_timezone") or DEFAULT_TIMEZONE,
            contact_window=parse_window(get_variable("arrears_contact_window")
                                        or DEFAULT_CONTACT_WINDOW),
            db_url=database_url(get_connection("arrears_db")),
        )
