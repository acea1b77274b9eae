"""The daily collection cycle: wiring only; the steps live in plugins/arrears."""
from __future__ import annotations

from datetime import time, timedelta

from airflow.sdk import Param, dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from arrears.audit import tasks as audit_steps
from arrears.batches import tasks as batch_steps
from arrears.cycle import tasks as cycle_steps
from arrears.delivery import tasks as delivery_steps
from arrears.disconnection import tasks as disconnection_steps
from arrears.ingest import tasks as ingest_steps
from arrears.ops import alerts, dag_defaults

# 08:30 local: the billing extract lands overnight, messages go out inside the contact window.
SCHEDULED_AT = time(8, 30)

default_args = dag_defaults.default_args(
    3, timedelta(minutes=1), retry_exponential_backoff=True, max_retry_delay=timedelta(minutes=15),
    # Every step writes the collection database; the pool caps concurrent writers (airflow-init
    # and the e2e setup create it).
    pool="arrears_db",
)


@dag(
    dag_id="arrears_collection_cycle",
    schedule=CronTriggerTimetable(f"{SCHEDULED_AT.minute} {SCHEDULED_AT.hour} * * *",
                                  timezone=dag_defaults.TIMEZONE),
    deadline=alerts.cycle_deadline(SCHEDULED_AT),
    start_date=dag_defaults.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["arrears", "collections"],
    params={
        "encoding": Param(None, type=["null", "string"], enum=[None, "utf-8", "gb18030"],
                          description="landing files' encoding; empty: the variable "
                                      "arrears_encoding, else UTF-8 (undeclared)"),
        "dry_run": Param(False, type="boolean",
                         description="decide and write the outputs, contact nobody (a replay)"),
        "allow_contact": Param(False, type="boolean",
                               description="let a backfill (replay) send messages and serve notices"),
        "portfolio": Param("default", type="string", description="policy file include/policy/<portfolio>.toml"),
        "landing_wait_minutes": Param(360, type="integer", minimum=0,
                                      description="how long to wait for the landing folder"),
    },
    doc_md=__doc__,
)
def arrears_collection_cycle():
    @task.sensor(poke_interval=60, mode="reschedule", timeout=timedelta(days=1))
    def wait_for_landing(**context) -> bool:
        return ingest_steps.landing_ready(context)

    @task
    def ingest(**context) -> dict:
        return ingest_steps.ingest(context)

    @task
    def stage(**context) -> dict:
        return cycle_steps.stage(context)

    @task
    def plan_decisions(**context) -> list[dict]:
        return cycle_steps.plan(context)

    # One mapped task per part of the accounts, so Celery workers share the decisions.
    @task
    def decide_part(part: dict, **context) -> dict:
        return cycle_steps.decide_part(context, part)

    @task
    def decide(parts: list[dict], **context) -> dict:
        return cycle_steps.decide(context, parts)

    @task
    def publish(**context) -> dict:
        return cycle_steps.publish(context)

    @task
    def disconnection(**context) -> dict:
        return disconnection_steps.cycle_disconnection(context)

    @task(outlets=[disconnection_steps.proposals_asset()])
    def announce_proposals(step: dict, **context) -> dict:
        return disconnection_steps.announce_proposals(context, step)

    @task
    def lawyer_letters(**context) -> dict:
        return batch_steps.lawyer_letters(context)

    @task
    def credit_report(**context) -> dict:
        return batch_steps.credit_report(context)

    @task
    def agent_lists(**context) -> dict:
        return batch_steps.agent_lists(context)

    @task
    def queue_messages(**context) -> dict:
        return delivery_steps.queue(context)

    # One pool slot per SMTP session; messages outside the contact window wait for the hourly
    # arrears_outbox_dispatch DAG, so this never blocks the cycle.
    @task(pool=delivery_steps.POOL)
    def dispatch_messages(**context) -> dict:
        return delivery_steps.dispatch_cycle(context)

    planned = plan_decisions()
    decided = decide(decide_part.expand(part=planned))
    served = disconnection()
    messages = queue_messages()
    wait_for_landing() >> ingest() >> stage() >> planned
    decided >> served >> messages
    messages >> dispatch_messages() >> publish()
    announce_proposals(served)

    # none_failed: a step that skips itself (nothing to propose today) must not skip these.
    @task(trigger_rule="none_failed")
    def report(**context) -> dict:
        return audit_steps.report(context)

    @task(trigger_rule="none_failed")
    def audit(**context) -> dict:
        return audit_steps.audit(context)

    report() >> audit()
    decided >> [lawyer_letters(), credit_report(), agent_lists()]


cycle = arrears_collection_cycle()
# The report and the audit follow every other leaf, i.e. whatever acts on the day, wherever
# it is wired above.
[t for t in cycle.leaves if t.task_id not in ("report", "audit")] >> cycle.get_task("report")
