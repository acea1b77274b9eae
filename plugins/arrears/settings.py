"""Runtime settings from Airflow variables and connections (CONTRACT §4).

Inside Airflow the values come from Airflow's variables/connections (which include the
``AIRFLOW_VAR_*`` / ``AIRFLOW_CONN_*`` environment variables); outside Airflow (the CLI, tests)
from those environment variables directly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import time
from pathlib import Path

from airflow.sdk import ObjectStoragePath
from sqlalchemy.engine import URL

from arrears.outbox_files import as_storage_path
from arrears.paths import REPO_ROOT

DEFAULT_TIMEZONE = "Asia/Shanghai"


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
    # The Task SDK's plain Connection, not the ORM model: the model's first instance configures
    # every Airflow mapper (1.9 s of a task's start-up on a busy machine, for parsing a string).
    from airflow.sdk import Connection
    raw = os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"].strip()
    try:
        if raw.startswith("{"):
            return Connection.from_json(raw, conn_id=conn_id)
        return Connection.from_uri(raw, conn_id=conn_id)
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"connection {conn_id} (AIRFLOW_CONN_{conn_id.upper()}) cannot be "
                            f"parsed: {exc}. {_DB_FORMS}") from None


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


_DB_FORMS = ("Accepted forms: sqlite:///absolute/path.db, sqlite:////absolute/path.db, "
             "{\"conn_type\": \"sqlite\", \"host\": \"/absolute/or/relative/path.db\"}, "
             "sqlite://relative/path.db, or postgres://user:password@host:port/database "
             "(extras such as sslmode in the query string or the JSON extra).")


def database_url(conn) -> str:
    """A SQLAlchemy URL for the ``arrears_db`` connection (sqlite or postgres)."""
    if conn is None:
        path = Path(os.environ.get("ARREARS_DEFAULT_DB", REPO_ROOT / "var" / "arrears.db"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    kind = (conn.conn_type or "").lower()
    if kind == "sqlite":
        return URL.create("sqlite", database=str(sqlite_path(conn))).render_as_string()
    if kind in ("postgres", "postgresql"):
        return postgres_url(conn).render_as_string(hide_password=False)
    raise SettingsError(
        f"connection arrears_db has type {conn.conn_type!r}: use sqlite or postgres. {_DB_FORMS}")


def sqlite_path(conn) -> Path:
    """The database file of a SQLite connection, by the rules of Airflow's SQLite connection:
    the path is the host (JSON form, or percent-encoded in the URI), or the URI's path
    (``sqlite:///abs`` and ``sqlite:////abs`` both name ``/abs``; ``sqlite://dir/file.db``
    names the relative ``dir/file.db``). A relative path is resolved against the working
    directory once, here, so every engine of the process opens the same file. Anything that
    would open an in-memory or unnamed (temporary) database is refused: the cycle's record
    must outlive the process."""
    host, schema = (conn.host or "").strip(), (conn.schema or "").strip()
    if host and schema:
        text = f"{host}/{schema}"
    elif schema:
        text = schema if schema.startswith("/") else "/" + schema
    else:
        text = host
    extra = {str(k).lower(): str(v).lower() for k, v in (conn.extra_dejson or {}).items()}
    if (not text or ":memory:" in text or text.startswith("file:")
            or extra.get("mode") == "memory" or "mode=memory" in text):
        raise SettingsError(
            f"connection arrears_db would open an in-memory or unnamed SQLite database "
            f"({text or 'no path'!r}): every cycle would forget the earlier ones. Name a file. "
            f"{_DB_FORMS}")
    return Path(text).expanduser().resolve()


def postgres_url(conn) -> URL:
    """PostgresHook's own SQLAlchemy URL, plus the connection's libpq extras (sslmode,
    sslrootcert, ...) that the hook passes to psycopg in ``get_conn`` but leaves out of
    ``sqlalchemy_url`` unless they sit under ``sqlalchemy_query``."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    hook = PostgresHook(conn.conn_id or "arrears_db", connection=conn)
    url = hook.sqlalchemy_url
    if not url.database:
        raise SettingsError(f"connection arrears_db names no database. {_DB_FORMS}")
    libpq = {k: str(v) for k, v in (conn.extra_dejson or {}).items()
             if k not in hook.ignored_extra_options and not isinstance(v, (dict, list))}
    return url.update_query_dict({**libpq, **dict(url.query)})


def contact_window(policy_window: str) -> tuple[time, time]:
    """The Airflow variable arrears_contact_window, else the portfolio policy's window: the one
    default lives in the policy file ([contact] window)."""
    return parse_window(get_variable("arrears_contact_window") or policy_window)


_OUTBOX_FORMS = ("Use a local folder (/srv/arrears/outbox or file:///srv/arrears/outbox) or an "
                 "object-store URL whose provider is installed (s3://<conn_id>@<bucket>/<prefix> "
                 "needs apache-airflow-providers-amazon); see README, Configuration.")


def outbox_root() -> ObjectStoragePath:
    """The variable arrears_outbox as an ObjectStoragePath (a local folder or an object-store
    URL: README "Configuration"), read raw: a Path would fold "s3://" into "s3:/". A scheme no
    installed provider serves fails here, naming the variable, not at the first file written."""
    location = get_variable("arrears_outbox") or REPO_ROOT / "var" / "outbox"
    try:
        root = as_storage_path(location)
        root.fs  # noqa: B018 - resolves the scheme's file system (lazily: opens no connection)
    except ValueError as exc:
        raise SettingsError(f"variable arrears_outbox = {str(location)!r}: {exc}. "
                            f"{_OUTBOX_FORMS}") from None
    return root


@dataclass(frozen=True)
class Settings:
    landing: Path
    outbox: ObjectStoragePath  # arrears.outbox_files: every file under it goes through there
    timezone: str
    db_url: str
    encoding: str | None = None  # the landing files' encoding; None: undeclared (UTF-8)

    @classmethod
    def load(cls) -> Settings:
        return cls(
            landing=Path(get_variable("arrears_landing") or REPO_ROOT / "var" / "landing"),
            outbox=outbox_root(),
            timezone=get_variable("arrears_timezone") or DEFAULT_TIMEZONE,
            db_url=database_url(get_connection("arrears_db")),
            encoding=get_variable("arrears_encoding") or None,
        )
