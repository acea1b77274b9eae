"""Where the test suite finds its PostgreSQL server (imported by conftest and tests alike:
`conftest` itself is ambiguous as a module name, there is one per test folder)."""
import os

PG_URL = os.environ.get("ARREARS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def connection_json(db_url: str) -> str:
    """A collection database as an ``AIRFLOW_CONN_ARREARS_DB`` JSON value (each backend), the
    way an operator would set it."""
    import json
    from sqlalchemy.engine import make_url
    if db_url.startswith("sqlite"):
        return json.dumps({"conn_type": "sqlite", "host": make_url(db_url).database})
    url = make_url(db_url)
    return json.dumps({"conn_type": "postgres", "host": url.host, "port": url.port or 5432,
                       "login": url.username, "schema": url.database,
                       "extra": {k: v for k, v in url.query.items()}})
