"""What-if (CONTRACT §5): replay a policy file over recorded cycle dates, contacting nobody and
changing nothing real. Trigger it by hand with the portfolio and the dates; the task log shows
each date as it is replayed; the files land in <outbox>/whatif/<id>/. Wiring only."""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task

from arrears.ops import dag_defaults
from arrears.whatif import tasks as whatif_steps



@dag(
    dag_id="arrears_policy_whatif",
    schedule=None,
    start_date=dag_defaults.START_DATE,
    catchup=False,
    default_args=dag_defaults.default_args(1, timedelta(minutes=1)),
    tags=["arrears", "policy"],
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
