"""Daily retention (CONTRACT §9): purges raw quarantined rows, old contact evidence, old bureau
files and the personal data of accounts that left the extract once their periods ran out, and
records each purge in the audit trail. Wiring only: arrears.retention.tasks.retention."""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from arrears.ops import dag_defaults
from arrears.retention import tasks as retention_steps



@dag(
    dag_id="arrears_retention",
    # 03:15, well away from the 08:30 cycle: the purge takes the audit chain's lock.
    schedule=CronTriggerTimetable("15 3 * * *", timezone=dag_defaults.TIMEZONE),
    start_date=dag_defaults.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dag_defaults.default_args(2, timedelta(minutes=10)),
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
