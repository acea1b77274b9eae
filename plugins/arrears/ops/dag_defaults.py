"""What every DAG of the project shares: the utility's time zone, the start date, the owner, the
retries and the ops failure alert. One place, so a new DAG cannot forget the alert or the owner
(the integrity test checks both on every DAG)."""
from __future__ import annotations

import os
from datetime import timedelta

import pendulum

from arrears.ops import alerts
from arrears.settings import DEFAULT_TIMEZONE

# Read from the environment at parse time (a DAG file must not ask the API server for variables at
# every parse); it is the variable the tasks read, so both agree wherever it is set.
TIMEZONE = os.environ.get("AIRFLOW_VAR_ARREARS_TIMEZONE", DEFAULT_TIMEZONE)
START_DATE = pendulum.datetime(2026, 1, 1, tz=TIMEZONE)
OWNER = "collections-ops"


def default_args(retries: int, retry_delay: timedelta, **more) -> dict:
    """A DAG's default_args. ``ARREARS_TASK_RETRIES`` overrides the retries (the test suite sets
    it to 0 so that a failing task fails its test at once)."""
    return {
        "owner": OWNER,
        "retries": int(os.environ.get("ARREARS_TASK_RETRIES", str(retries))),
        "retry_delay": retry_delay,
        "on_failure_callback": alerts.failure_notifier(),
        **more,
    }
