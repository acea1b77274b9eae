"""Links from the auditors' page to the log of the task try that acted, in the DAG that ran it."""
from __future__ import annotations

from arrears.audit.web import log_link


def test_log_links_point_at_the_dag_that_acted():
    run = "scheduled__2026-11-18T00:30:00+00:00"
    quoted = "scheduled__2026-11-18T00%3A30%3A00%2B00%3A00"
    assert log_link("decision", run, "decide", 1) == \
        f"/dags/arrears_collection_cycle/runs/{quoted}/tasks/decide?try_number=1"
    assert log_link("message", run, "send_waiting_messages", 2).startswith(
        "/dags/arrears_outbox_dispatch/runs/")
    assert log_link("order", run, "release", 1).startswith("/dags/arrears_disconnection_release/")
    assert log_link("approval", run, "approve", 1).startswith("/dags/arrears_disconnection_release/")
    assert log_link("batch_file", run, "lawyer_letters", 0).endswith("/tasks/lawyer_letters")
    assert log_link("decision", "", "decide", 1) == ""
