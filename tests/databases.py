"""Where the test suite finds its PostgreSQL server (imported by conftest and tests alike:
`conftest` itself is ambiguous as a module name, there is one per test folder)."""
import os

PG_URL = os.environ.get("ARREARS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
