"""The task-context glue every area's task module imports: the run from the task context, the
settings (read once per task), the collection database. A leaf: it imports no step, so the steps
(``ingest/tasks.py``, ``cycle/tasks.py``, ``delivery/tasks.py``, ...) never import each other
through it.
"""
from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from arrears.cycle.run import CycleRun, cycle_date_of
from arrears.db import connect
from arrears.settings import Settings

_SETTINGS_TTL_SECONDS = 30.0
# A long batch step (letters, queueing and sending mail) runs this much nicer than the worker, so
# the short steps a Celery worker runs beside it (a sensor, the decide merge, the proposals'
# announcement: about 1 s of start-up each) get a core at once instead of a share of one.
BATCH_NICENESS = 10
_settings_cache: tuple[tuple, float, Settings] | None = None


def settings() -> Settings:
    """The settings, read once per task rather than at every call (each read asks the API
    server for several variables). Cached briefly and keyed on the ARREARS environment
    variables: `dag.test` runs many tasks in one process, and an operator may change a
    variable between tasks."""
    global _settings_cache
    key = tuple(sorted((k, v) for k, v in os.environ.items()
                       if k.startswith(("AIRFLOW_VAR_ARREARS", "AIRFLOW_CONN_ARREARS"))))
    now = time.monotonic()
    if _settings_cache is None or _settings_cache[0] != key or _settings_cache[1] < now:
        _settings_cache = (key, now + _SETTINGS_TTL_SECONDS, Settings.load())
    return _settings_cache[2]


def engine() -> Engine:
    return connect(settings().db_url)


def run_from_context(context) -> CycleRun:
    dag_run = context["dag_run"]
    params = context.get("params") or {}
    ti = context.get("ti")
    return CycleRun(
        cycle_date=cycle_date_of(context.get("logical_date"), getattr(dag_run, "run_after", None),
                                 settings().timezone),
        run_id=dag_run.run_id,
        run_type=str(getattr(dag_run.run_type, "value", dag_run.run_type)),
        allow_contact=bool(params.get("allow_contact", False)),
        dry_run=bool(params.get("dry_run", False)),
        try_number=getattr(ti, "try_number", 1) or 1,
        task_id=getattr(ti, "task_id", ""),
    )


def landing_folder(run: CycleRun) -> Path:
    return settings().landing / run.cycle_date.isoformat()


def batch_step(step: Callable) -> Callable:
    """Run ``step`` at BATCH_NICENESS (its child processes inherit it), then give the niceness
    back where the system allows (``dag.test`` runs every task in one process; a task process
    of a worker ends with its task anyway)."""
    @functools.wraps(step)
    def nicer(*args, **kwargs):
        before = os.nice(0)
        os.nice(max(0, BATCH_NICENESS - before))
        try:
            return step(*args, **kwargs)
        finally:
            try:
                os.nice(before - os.nice(0))
            except PermissionError:  # lowering niceness needs CAP_SYS_NICE: stay nicer
                pass
    return nicer
