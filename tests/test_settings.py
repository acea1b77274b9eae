"""Configuration names of CONTRACT §4, read from AIRFLOW_VAR_* / AIRFLOW_CONN_* variables."""
import json
from datetime import time

import pytest

from arrears.settings import Settings, SettingsError, database_url, get_connection, parse_window


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
    assert (s.landing, s.outbox, s.timezone) == (tmp_path / "in", tmp_path / "out", "Asia/Urumqi")
    assert s.contact_window == (time(9), time(20))
    assert s.db_url == "postgresql+psycopg://app:s%40cret@db.internal:6543/collections"


def test_json_connection_form_and_sqlite(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", json.dumps({"conn_type": "sqlite", "host": "/data/a.db"}))
    assert database_url(get_connection("arrears_db")) == "sqlite:////data/a.db"


def test_unsupported_database_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", "mysql://u@h/db")
    with pytest.raises(SettingsError, match="use sqlite or postgres"):
        database_url(get_connection("arrears_db"))
