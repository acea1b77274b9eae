"""What-if (CONTRACT §5): replay a policy file over recorded cycle dates, contacting nobody and
changing nothing real. Trigger it by hand with the portfolio and the dates; the task log shows
each date as it is replayed; the files land in <outbox>/whatif/<id>/. Wiring only."""
from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from arrears.ops import alerts
from arrears.whatif import tasks as whatif_steps

TIMEZONE = os.environ.get("AIRFLOW_VAR_ARREARS_TIMEZONE", "Asia/Shanghai")


@dag(
    dag_id="arrears_policy_whatif",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    default_args={
        "owner": "collections-ops",
        "retries": int(os.environ.get("ARREARS_TASK_RETRIES", "1")),
        "retry_delay": timedelta(minutes=1),
        "on_failure_callback": alerts.failure_notifier(),
    },
    tags=["arrears", "collections"],
    params={
        "portfolio": Param("default", type="string", minLength=1,
                           description="policy file include/policy/<portfolio>.toml to try"),
        "from": Param(type="string", format="date", description="first cycle date D1 (YYYY-MM-DD)"),
        "to": Param(type="string", format="date", description="last cycle date D2 (YYYY-MM-DD)"),
    },
    doc_md=__doc__,
)
def arrears_policy_whatif():
    @task
    def whatif(**context) -> dict:
        return whatif_steps.from_context(context)

    whatif()


arrears_policy_whatif()
