"""Release of disconnection work orders after a supervisor's approval: wiring only; the steps
live in plugins/arrears/disconnection.

Runs when the collection cycle announces a batch of proposed orders (the asset
`arrears://disconnection/proposed_orders`), or by hand with conf `{"cycle_date": "YYYY-MM-DD"}`.
The approvers named in the `arrears_approvers` variable are mailed a link and answer in the UI's
Required Actions page; nobody else may; no answer by the deadline is Reject.
"""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task

from arrears.disconnection import tasks as disconnection_steps
from arrears.disconnection.approval import SupervisorApproval
from arrears.ops import dag_defaults

COLLECT = "collect_proposals"

default_args = dag_defaults.default_args(3, timedelta(minutes=1))


@dag(
    dag_id="arrears_disconnection_release",
    schedule=[disconnection_steps.proposals_asset()],
    start_date=dag_defaults.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["arrears", "disconnection", "approval"],
    params={
        "cycle_date": Param(None, type=["null", "string"], format="date",
                            description="batch to release when triggered by hand (YYYY-MM-DD)"),
        "dry_run": Param(False, type="boolean",
                         description="check and preview work_orders.dry_run.csv; release nothing"),
        "portfolio": Param("default", type="string", description="policy file include/policy/<portfolio>.toml"),
    },
    doc_md=__doc__,
)
def arrears_disconnection_release():
    @task(task_id=COLLECT)
    def collect_proposals(**context) -> dict:
        return disconnection_steps.collect_proposals(context)

    approve = SupervisorApproval(
        task_id="approve",
        subject=f"{{{{ ti.xcom_pull(task_ids='{COLLECT}')['subject'] }}}}",
        body=f"{{{{ ti.xcom_pull(task_ids='{COLLECT}')['body'] }}}}",
        defaults="Reject",  # no answer by the deadline releases nothing
        response_timeout=timedelta(hours=disconnection_steps.approval_timeout_hours()),
        retries=0,  # a retry would ask the supervisor a second time
    )

    @task
    def release(**context) -> dict:
        return disconnection_steps.release(context)

    @task(trigger_rule="all_done")
    def record_outcome(**context) -> dict:
        return disconnection_steps.record_outcome(context)

    collect_proposals() >> approve >> release() >> record_outcome()


arrears_disconnection_release()
