"""Configuration names of CONTRACT §4, read from AIRFLOW_VAR_* / AIRFLOW_CONN_* variables."""
import json
from datetime import time

import pytest

from arrears.settings import (Settings, SettingsError, contact_window, database_url, get_connection,
                              parse_window)


def test_contact_window_parsing():
    assert parse_window("08:00-21:00") == (time(8), time(21))
    assert parse_window("00:00-24:00")[1] == time.max
    with pytest.raises(SettingsError, match="HH:MM-HH:MM"):
        parse_window("8am-9pm")
    with pytest.raises(SettingsError, match="ends before it starts"):
        parse_window("21:00-08:00")


def test_variables_and_connection_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_LANDING", str(tmp_path / "in"))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(tmp_path / "out"))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_TIMEZONE", "Asia/Urumqi")
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_CONTACT_WINDOW", "09:00-20:00")
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", "postgres://app:s%40cret@db.internal:6543/collections")
    s = Settings.load()
    assert (s.landing, str(s.outbox), s.timezone) == (tmp_path / "in", f"file://{tmp_path / 'out'}",
                                                      "Asia/Urumqi")
    assert contact_window("08:00-21:00") == (time(9), time(20))   # the variable wins over the policy
    assert s.db_url == "postgresql+psycopg://app:s%40cret@db.internal:6543/collections"


def test_json_connection_form_and_sqlite(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", json.dumps({"conn_type": "sqlite", "host": "/data/a.db"}))
    assert database_url(get_connection("arrears_db")) == "sqlite:////data/a.db"


@pytest.mark.parametrize("value", [
    "postgres://app:s%40cret@db.internal:6543/collections?sslmode=require",
    json.dumps({"conn_type": "postgres", "host": "db.internal", "login": "app", "port": "6543",
                "schema": "collections", "extra": {"sslmode": "require"}})])
def test_a_connection_from_the_environment_is_parsed_without_airflow_orm(monkeypatch, value):
    """Every task's start-up reads arrears_db: the Task SDK's Connection parses it; the ORM
    model's first instance would configure all of Airflow's mappers first (seconds on a busy
    worker)."""
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", value)
    conn = get_connection("arrears_db")
    assert type(conn).__module__.startswith("airflow.sdk.")
    assert (conn.conn_type, conn.host, conn.port, conn.schema, conn.login) == \
        ("postgres", "db.internal", 6543, "collections", "app")
    assert conn.extra_dejson == {"sslmode": "require"}
    assert database_url(conn).endswith("@db.internal:6543/collections?sslmode=require")


@pytest.mark.parametrize("value, says", [
    ("{not json", "cannot be parsed: Expecting property name"),
    ('{"conn_type": "postgres", "bogus": 1}', "cannot be parsed: .*bogus"),
    ('{"conn_type": "postgres", "port": "abc"}', "cannot be parsed: .*port"),
    ("postgres://u@h:notaport/db", "cannot be parsed: Port could not be cast"),
    ("postgres://u@h:99999999999/db", "cannot be parsed: Port out of range"),
    ('{"conn_type": null}', "has type None: use sqlite or postgres"),
    ("[1, 2]", "has type '': use sqlite or postgres"),
])
def test_a_hostile_connection_in_the_environment_is_a_clear_error(monkeypatch, value, says):
    """The Task SDK's parser (every task's start-up) turns each into the settings' own error,
    never a traceback from inside Airflow."""
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", value)
    with pytest.raises(SettingsError, match=says):
        database_url(get_connection("arrears_db"))


def test_unsupported_database_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", "mysql://u@h/db")
    with pytest.raises(SettingsError, match="use sqlite or postgres"):
        database_url(get_connection("arrears_db"))


def _sqlite_forms(tmp_path):
    absolute = tmp_path / "forms.db"
    return {
        "three-slash URI (Airflow's SQLite docs)": f"sqlite://{absolute}",           # sqlite:///abs
        "four-slash URI (SQLAlchemy's form)": f"sqlite:///{absolute}",              # sqlite:////abs
        "percent-encoded host": "sqlite://" + str(absolute).replace("/", "%2F"),
        "JSON host": json.dumps({"conn_type": "sqlite", "host": str(absolute)}),
    }


def test_every_sqlite_connection_form_reaches_the_file(monkeypatch, tmp_path):
    """Each documented form opens the same file: what one form writes, the others read."""
    from sqlalchemy import text

    from arrears.db import connect
    absolute = tmp_path / "forms.db"
    for number, (form, value) in enumerate(_sqlite_forms(tmp_path).items()):
        monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", value)
        url = Settings.load().db_url
        assert url == f"sqlite:///{absolute}", form
        with connect(url).begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS probe (n INTEGER)"))
            conn.execute(text("INSERT INTO probe VALUES (:n)"), {"n": number})
    import sqlite3
    with sqlite3.connect(absolute) as raw:
        assert sorted(n for (n,) in raw.execute("SELECT n FROM probe")) == [0, 1, 2, 3]
        # the schema was migrated in the file itself
        assert raw.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] > 0


def test_a_relative_sqlite_path_is_resolved_against_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for value in ("sqlite://var/rel.db", json.dumps({"conn_type": "sqlite", "host": "var/rel.db"})):
        monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", value)
        assert Settings.load().db_url == f"sqlite:///{tmp_path / 'var' / 'rel.db'}"
    (tmp_path / "var").mkdir()
    from arrears.db import connect
    connect(Settings.load().db_url)
    assert (tmp_path / "var" / "rel.db").stat().st_size > 0


@pytest.mark.parametrize("value", [
    "sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite://:memory:",
    json.dumps({"conn_type": "sqlite", "host": ":memory:"}),
    json.dumps({"conn_type": "sqlite"}),
    json.dumps({"conn_type": "sqlite", "host": "file::memory:?cache=shared"}),
    json.dumps({"conn_type": "sqlite", "host": "/tmp/x.db", "extra": {"mode": "memory"}}),
])
def test_an_in_memory_or_unnamed_sqlite_database_is_refused(monkeypatch, value):
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", value)
    with pytest.raises(SettingsError) as raised:
        Settings.load()
    message = str(raised.value)
    assert "arrears_db" in message and "sqlite:////absolute/path.db" in message


def test_postgres_extras_such_as_sslmode_survive(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB",
                       "postgres://app:pw@db.internal:5432/collections?sslmode=verify-full"
                       "&sslrootcert=%2Fetc%2Fca.pem")
    url = Settings.load().db_url
    assert url.startswith("postgresql+psycopg://app:pw@db.internal:5432/collections?")
    assert "sslmode=verify-full" in url and "sslrootcert=%2Fetc%2Fca.pem" in url
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", json.dumps(
        {"conn_type": "postgres", "host": "db", "login": "app", "schema": "c",
         "extra": {"sslmode": "require", "sqlalchemy_query": {"application_name": "arrears"}}}))
    url = Settings.load().db_url
    assert "sslmode=require" in url and "application_name=arrears" in url


def test_postgres_connection_reaches_the_server(monkeypatch):
    """The URL built from the JSON form opens the test server and migrates it once per process."""
    from sqlalchemy import text

    from arrears.db import engine as engine_module
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", json.dumps(
        {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres",
         "schema": "test", "extra": {"sslmode": "disable"}}))
    url = Settings.load().db_url
    assert "sslmode=disable" in url
    eng = engine_module.make_engine(url)
    with eng.connect() as conn:
        assert conn.execute(text("SHOW ssl")).scalar() in ("on", "off")


def test_the_schema_is_migrated_once_per_process(monkeypatch, tmp_path):
    from arrears.db import engine as engine_module
    calls = []
    import importlib
    migrate_module = importlib.import_module("arrears.db.migrate")
    real = migrate_module.migrate
    monkeypatch.setattr(migrate_module, "migrate", lambda eng: calls.append(eng) or real(eng))
    url = f"sqlite:///{tmp_path / 'once.db'}"
    first = engine_module.connect(url)
    for _ in range(5):
        assert engine_module.connect(url) is first
    assert len(calls) == 1
