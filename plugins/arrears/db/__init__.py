"""The collection database: engine, schema migrations and the SQL files of include/sql/."""
from arrears.db.engine import connect, make_engine
from arrears.db.migrate import migrate
from arrears.db.sqlfiles import run_script, sql

__all__ = ["connect", "make_engine", "migrate", "run_script", "sql"]
