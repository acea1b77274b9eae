"""Hourly outbox sweep: sends the messages that wait (deferred outside the contact window,
failed for now, or left by a crashed attempt) once the window is open; refreshes the `messages`
counts in each touched date's cycle_summary.json. Wiring only: arrears.delivery.tasks.sweep."""
from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from arrears.delivery import tasks as delivery_steps
from arrears.ops import alerts

TIMEZONE = os.environ.get("AIRFLOW_VAR_ARREARS_TIMEZONE", "Asia/Shanghai")


@dag(
    dag_id="arrears_outbox_dispatch",
    # Minute 5 of every hour: a window opening at 08:00 is served by 08:05.
    schedule=CronTriggerTimetable("5 * * * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "collections-ops",
                  "retries": int(os.environ.get("ARREARS_TASK_RETRIES", "2")),
                  "retry_delay": timedelta(minutes=5),
                  "on_failure_callback": alerts.failure_notifier()},
    tags=["arrears", "collections", "delivery"],
    doc_md=__doc__,
)
def arrears_outbox_dispatch():
    @task(pool=delivery_steps.POOL)
    def send_waiting_messages(**context) -> dict:
        return delivery_steps.sweep(context)

    send_waiting_messages()


arrears_outbox_dispatch()
