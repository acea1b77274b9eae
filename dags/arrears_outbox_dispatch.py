"""Hourly outbox sweep: sends the messages that wait (deferred outside the contact window,
failed for now, or left by a crashed attempt) once the window is open; refreshes the `messages`
counts in each touched date's cycle_summary.json. Wiring only: arrears.delivery.tasks.sweep."""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from arrears.delivery import tasks as delivery_steps
from arrears.ops import dag_defaults



@dag(
    dag_id="arrears_outbox_dispatch",
    # Minute 5 of every hour: a window opening at 08:00 is served by 08:05.
    schedule=CronTriggerTimetable("5 * * * *", timezone=dag_defaults.TIMEZONE),
    start_date=dag_defaults.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=dag_defaults.default_args(2, timedelta(minutes=5)),
    tags=["arrears", "collections", "delivery"],
    doc_md=__doc__,
)
def arrears_outbox_dispatch():
    @task(pool=delivery_steps.POOL)
    def send_waiting_messages(**context) -> dict:
        return delivery_steps.sweep(context)

    send_waiting_messages()


arrears_outbox_dispatch()
