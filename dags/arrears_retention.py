"""Daily retention (CONTRACT §9): purges raw quarantined rows, old contact evidence, old bureau
files and the personal data of accounts that left the extract once their periods ran out, and
records each purge in the audit trail. Wiring only: arrears.retention.tasks.retention."""
from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from arrears.ops import alerts
from arrears.retention import tasks as retention_steps

TIMEZONE = os.environ.get("AIRFLOW_VAR_ARREARS_TIMEZONE", "Asia/Shanghai")


@dag(
    dag_id="arrears_retention",
    # 03:15, well away from the 08:30 cycle: the purge takes the audit chain's lock.
    schedule=CronTriggerTimetable("15 3 * * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "collections-ops",
                  "retries": int(os.environ.get("ARREARS_TASK_RETRIES", "2")),
                  "retry_delay": timedelta(minutes=10),
                  "on_failure_callback": alerts.failure_notifier()},
    params={"dry_run": Param(False, type="boolean", description="count only, purge nothing"),
            "portfolio": Param("default", type="string", description="policy file")},
    tags=["arrears", "collections", "retention"],
    doc_md=__doc__,
)
def arrears_retention():
    @task
    def purge(**context) -> dict:
        return retention_steps.retention(context)

    purge()


arrears_retention()
