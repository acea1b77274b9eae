"""Shared fixtures. Tests run against real databases: SQLite files and the PostgreSQL server
(127.0.0.1:5432, database `test`, or ARREARS_TEST_PG_URL). Without PostgreSQL the postgres
tests fail; they never skip."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Airflow reads its configuration at import: point it at a throwaway home before any import.
_AIRFLOW_HOME = Path(os.environ.setdefault("ARREARS_TEST_AIRFLOW_HOME", f"/tmp/arrears-test-airflow-{os.getpid()}"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ["ARREARS_TASK_RETRIES"] = "0"  # a failing task fails the test at once
sys.path.insert(0, str(REPO / "plugins"))

from databases import PG_URL, connection_json  # noqa: E402


def _pg_schema_url(schema: str) -> str:
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@contextmanager
def _database(kind: str, folder: Path):
    """The URL of a fresh, empty collection database: a SQLite file in ``folder`` or a schema of
    its own on the PostgreSQL server (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'arrears.db'}"
        return
    from sqlalchemy import create_engine, text
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:  # fails (never skips) when PostgreSQL is not running
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield _pg_schema_url(schema)
    finally:
        from arrears.db.engine import make_engine
        make_engine.cache_clear()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def new_database():
    """``new_database(kind, folder)``: a fresh collection database of that kind (a context
    manager giving its URL), for a test that compares both kinds side by side."""
    return _database


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A fresh, empty collection database on each backend."""
    with _database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def module_db_url(request, tmp_path_factory):
    """One database per backend shared by a module's tests (for data loaded once, read by many)."""
    with _database(request.param, tmp_path_factory.mktemp(f"db-{request.param}")) as url:
        yield url


@pytest.fixture
def engine(db_url):
    from arrears.db import connect
    return connect(db_url)


@pytest.fixture(scope="session")
def airflow_home():
    """An initialised Airflow metadata database for `dag.test()` runs."""
    _AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    if not (_AIRFLOW_HOME / "airflow.db").exists():
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                       capture_output=True, env=os.environ.copy())
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def parsed_dags(airflow_home):
    """Every DAG of dags/, parsed the way the dag-processor parses them (once per session), with
    each Param's default as parsed."""
    import copy
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=str(REPO / "dags"))
    defaults = [(param, copy.deepcopy(param.value))
                for param in _params_of(bag)]
    return bag, defaults


def _params_of(bag):
    for dag in bag.dags.values():
        yield from dag.params.values()          # ParamsDict.values(): the Param objects
        for task in dag.tasks:
            yield from task.params.values()


@pytest.fixture
def dagbag(parsed_dags):
    """The parsed DAGs with every Param back at its parsed default. Airflow's ``process_params``
    resolves a run's conf INTO the DAG's shared Param objects, harmless in a task process of its
    own but not across ``dag.test()`` calls in one process: one test's ``portfolio`` would
    otherwise decide the next test's cycle."""
    import copy
    bag, defaults = parsed_dags
    for param, value in defaults:
        param.value = copy.deepcopy(value)
    return bag


@pytest.fixture
def twin_db_url(db_url, tmp_path):
    """A second fresh database on ``db_url``'s backend: a world to compare the first with."""
    folder = tmp_path / "twin-db"
    folder.mkdir()
    with _database("sqlite" if db_url.startswith("sqlite") else "postgresql", folder) as url:
        yield url


@pytest.fixture
def collection_conn(db_url):
    """The test's collection database as an ``AIRFLOW_CONN_ARREARS_DB`` JSON value."""
    return connection_json(db_url)


@pytest.fixture
def dispatch_on_cycle_date(monkeypatch):
    """`dag.test` of a past date: the cycle's dispatch runs at 09:00 local on its cycle date and
    the hourly sweep at its own logical date, as they would in production (a message's
    delivery date is its service date)."""
    from datetime import datetime, timedelta, timezone

    from arrears.delivery import tasks as delivery
    cycle, sweep = delivery.dispatch_cycle, delivery.sweep

    def logical(context, later=timedelta(0)):  # a plain datetime, not pendulum's
        return lambda: datetime.fromtimestamp(context["logical_date"].timestamp(), timezone.utc) + later
    monkeypatch.setattr(delivery, "dispatch_cycle",
                        lambda context: cycle(context, clock=logical(context, timedelta(minutes=30))))
    monkeypatch.setattr(delivery, "sweep", lambda context: sweep(context, clock=logical(context)))
