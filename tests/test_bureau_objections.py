"""CONTRACT §8, credit-bureau objections (征信异议): the pure rule (days, alert from day 16), the
disputed flag in the bureau file until the answer, the cycle report's list and one ops mail per
objection on day 16 (real SMTP server), on SQLite and PostgreSQL."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import batches_scenario as scenario
from arrears.ingest.posted import post_event
from arrears.model import CaseEvent
from arrears.policy.objections import open_objection
from batches_scenario import D
from delivery_servers import start_smtp

RAISED = date(2026, 11, 1)  # D = 2026-11-16 is its day 16


def test_an_objection_counts_its_days_and_alerts_from_day_16():
    raised = CaseEvent("O1", "bureau_objection", RAISED)
    day15 = open_objection([raised], date(2026, 11, 15))
    assert (day15.day, day15.days_left, day15.alert) == (15, 6, False)
    day16 = open_objection([raised], date(2026, 11, 16))
    assert (day16.day, day16.days_left, day16.alert) == (16, 5, True)
    answered = CaseEvent("O2", "bureau_objection_resolved", date(2026, 11, 10))
    assert open_objection([raised, answered], date(2026, 11, 16)) is None
    assert open_objection([raised, answered], date(2026, 11, 9)).event_id == "O1"
    assert open_objection([raised], date(2026, 10, 31)) is None  # not yet raised


def _post(engine, event_id, event_type, effective: date, posted_on: date):
    body = {"event_id": event_id, "account_id": "A2", "event_type": event_type,
            "effective_date": effective.isoformat()}
    # Posted at 10:00 Shanghai the day before it is known.
    now = datetime(posted_on.year, posted_on.month, posted_on.day, 2, tzinfo=timezone.utc)
    assert post_event(engine, body, "backoffice.sun", now).status == "recorded"


def _details(engine, tmp_path, name):
    from arrears.batches.bureau import load_layout, verify, write_credit_report
    from arrears.outbox_files import day_folder
    folder = day_folder(tmp_path / name, D)
    write_credit_report(engine, folder, D)
    data = (folder / "credit_report" / "ARREARS_M2_20261116.txt").read_bytes()
    return {d["consumer_account_number"]: d["compliance_condition_code"]
            for d in verify(data, load_layout()).details}


def test_an_open_objection_flags_the_bureau_record_and_alerts_ops_on_day_16(engine, tmp_path,
                                                                           monkeypatch):
    from arrears.batches.objections import alert_overdue
    from arrears.policy import load_policy
    from arrears.report.cycle_report import write_cycle_report
    scenario.build(engine, tmp_path)
    assert _details(engine, tmp_path, "before") == {"A2": "", "A3": ""}
    _post(engine, "OBJ-A2", "bureau_objection", RAISED, date(2026, 11, 1))
    assert _details(engine, tmp_path, "open") == {"A2": "XB", "A3": ""}

    controller, recorder = start_smtp()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMTP", json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": controller.port,
            "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0,
                      "from_email": "airflow@utility.example"}}))
        monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OPS_EMAIL", "oncall@utility.example")
        policy = load_policy()
        assert alert_overdue(engine, date(2026, 11, 15), policy) == []  # day 15: not yet
        assert alert_overdue(engine, D, policy) == ["A2"]
        assert alert_overdue(engine, D, policy) == []  # a re-run mails nobody again
        (mail,) = recorder.messages
        assert mail["To"] == "oncall@utility.example"
        assert "A2" in mail["Subject"] and "open 16 days: 5 day(s) left" in mail["Subject"]
        assert "bureau_objection_resolved" in mail.get_body().get_content()
    finally:
        controller.stop()

    _, summary = write_cycle_report(engine, tmp_path / "outbox", D)
    assert summary["open_bureau_objections"] == [
        {"account_id": "A2", "raised_on": "2026-11-01", "day": 16, "days_left": 5, "alert": True}]
    report = (tmp_path / "outbox" / D.isoformat() / "cycle_report.html").read_text()
    assert "Open credit-bureau objections (1)" in report and "<td>A2</td>" in report

    # Answered: the next records are no longer flagged, the report lists nothing.
    _post(engine, "OBJ-A2-ANSWER", "bureau_objection_resolved", date(2026, 11, 14),
          date(2026, 11, 14))
    assert _details(engine, tmp_path, "answered") == {"A2": "", "A3": ""}
    _, summary = write_cycle_report(engine, tmp_path / "outbox", D)
    assert summary["open_bureau_objections"] == []


def test_an_account_paid_in_full_after_its_report_is_reported_paid_next_month(engine, tmp_path):
    """A2 and A3 are reported on 11-16; A2 pays everything and leaves the extract. The first
    file of December carries A2 once as paid (status 13, zero balance); later files do not."""
    from arrears.batches.bureau import load_layout, verify, write_credit_report
    from arrears.outbox_files import as_storage_path, day_folder
    from arrears.cycle.decide import decide_cycle, stage_bills
    from arrears.cycle.run import CycleRun
    from arrears.ingest import ingest_delivery
    from arrears.policy import load_policy
    from arrears.policy.business_days import BusinessCalendar
    from factories import landing
    scenario.build(engine, tmp_path)
    policy = load_policy()

    def cycle(day: date) -> dict:
        accounts = [a for a in scenario.ACCOUNTS if a[0] != "A2"]
        bills = [b for b in scenario.BILLS if b[1] != "A2"]
        ingest_delivery(engine, landing(tmp_path / "landing" / day.isoformat(), accounts, bills,
                                        [], scenario.EVENTS), day)
        stage_bills(engine, day)
        decide_cycle(engine, CycleRun(day, run_id=f"run-{day}", run_type="scheduled"), policy,
                     BusinessCalendar.for_policy(policy))
        folder = day_folder(as_storage_path(tmp_path / "out"), day)
        write_credit_report(engine, folder, day)
        data = (folder / "credit_report" / f"ARREARS_M2_{day:%Y%m%d}.txt").read_bytes()
        return {d["consumer_account_number"]: d for d in verify(data, load_layout()).details}

    assert "A2" not in cycle(date(2026, 11, 20))  # November's file already reported it
    december = cycle(date(2026, 12, 1))
    paid = december["A2"]
    assert (paid["account_status"], paid["current_balance"], paid["amount_past_due"],
            paid["consumer_name"]) == ("13", 0, 0, "李娜")
    first = (tmp_path / "out" / "2026-12-01" / "credit_report" / "ARREARS_M2_20261201.txt").read_bytes()
    assert cycle(date(2026, 12, 1))["A2"]["account_status"] == "13"  # a re-run: the same file
    assert (tmp_path / "out" / "2026-12-01" / "credit_report" / "ARREARS_M2_20261201.txt").read_bytes() == first
    assert "A2" not in cycle(date(2026, 12, 2))  # once
