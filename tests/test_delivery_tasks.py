"""The task glue of delivery: replay runs send nothing, retries are asked for only while Airflow
has tries left, the hourly sweep sends what waited and refreshes cycle_summary.json."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from arrears.cycle import outputs
from arrears.delivery import tasks
from arrears.delivery.outbox import message_counts
from delivery_servers import SmsGateway, start_smtp
from test_delivery_outbox import D, EXPECTED_EMAIL, at, decide_day


def context(run_type="scheduled", try_number=1, max_tries=0, allow_contact=False):
    logical = datetime(D.year, D.month, D.day, 0, 30, tzinfo=timezone.utc)   # 08:30 in Shanghai
    return {"dag_run": SimpleNamespace(run_id=f"{run_type}__{D}", run_type=run_type, run_after=logical,
                                       start_date=logical),
            "logical_date": logical, "params": {"allow_contact": allow_contact},
            "ti": SimpleNamespace(task_id="dispatch_messages", try_number=try_number, max_tries=max_tries)}


@pytest.fixture
def env(monkeypatch, tmp_path, db_url):
    from arrears import orchestration
    from arrears.db import connect
    engine = connect(db_url)
    monkeypatch.setattr(orchestration, "engine", lambda: engine)  # the fixture's database
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_TIMEZONE", "Asia/Shanghai")
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_CONTACT_WINDOW", "08:00-21:00")
    controller, smtp = start_smtp()
    gateway = SmsGateway()
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": controller.port,
        "extra": {"disable_ssl": True, "disable_tls": True}}))
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMS", json.dumps({
        "conn_type": "http", "extra": {"url": f"http://127.0.0.1:{gateway.port}/send"}}))
    yield engine, smtp, gateway, tmp_path / "outbox"
    controller.stop()
    gateway.stop()


def test_a_replay_run_queues_and_sends_nothing_and_says_so(env, tmp_path):
    engine, smtp, gateway, _ = env
    decide_day(engine, tmp_path, run_type="backfill")
    assert tasks.queue(context("backfill"), clock=at(D, 9)) == {
        "replay": True, "queued": 0, "note": "replay: no message queued or sent"}
    assert tasks.dispatch_cycle(context("backfill"), clock=at(D, 9))["replay"] is True
    assert smtp.messages == [] and gateway.requests == []
    # With allow_contact the backfill is not a replay: it decides the real record, queues, sends.
    decide_day(engine, tmp_path, run_type="backfill", allow_contact=True)
    assert tasks.queue(context("backfill", allow_contact=True), clock=at(D, 9))["queued"] == 11
    assert tasks.dispatch_cycle(context("backfill", allow_contact=True), clock=at(D, 9))["sent"] == 9


def test_a_failure_asks_airflow_for_a_retry_while_tries_are_left(env, tmp_path):
    engine, smtp, gateway, _ = env
    decide_day(engine, tmp_path)
    tasks.queue(context(), clock=at(D, 8, 30))
    smtp.fail_after = 1
    with pytest.raises(RuntimeError, match="retried and sends only what is still unsent"):
        tasks.dispatch_cycle(context(try_number=1, max_tries=3), clock=at(D, 8, 31))
    smtp.fail_after = None
    result = tasks.dispatch_cycle(context(try_number=2, max_tries=3), clock=at(D, 8, 33))
    assert not result["retry_wanted"] and {m["To"] for m in smtp.messages} == EXPECTED_EMAIL
    assert len(smtp.messages) == len(EXPECTED_EMAIL)


def test_on_the_last_try_failures_are_left_for_the_hourly_sweep(env, tmp_path):
    engine, smtp, gateway, outbox = env
    decide_day(engine, tmp_path)
    tasks.queue(context(), clock=at(D, 8, 30))
    smtp.fail_after = 0
    result = tasks.dispatch_cycle(context(try_number=4, max_tries=3), clock=at(D, 8, 31))
    assert result["retry_wanted"] and result["failed"] == 5   # the 6th bounced for good
    # publish writes the summary with the counts as they stand ...
    summary = {"accounts": 7, "messages": message_counts(engine, D)}
    outputs.write_summary(outbox / D.isoformat(), D, summary)   # the real run's folder
    assert summary["messages"]["failed"] == 5 and summary["messages"]["sent"] == 4
    # ... the hourly sweep sends the rest and refreshes the counts in cycle_summary.json.
    smtp.fail_after = None
    swept = tasks.sweep(context(), clock=at(D, 9, 5))
    assert swept["sent"] == 5 and len(smtp.messages) == 5
    refreshed = json.loads((outbox / D.isoformat() / "cycle_summary.json").read_text())
    assert refreshed["messages"]["sent"] == 9 and refreshed["messages"]["failed"] == 0
    assert refreshed["accounts"] == 7


def test_deferred_messages_go_out_with_the_first_sweep_inside_the_window(env, tmp_path):
    engine, smtp, gateway, _ = env
    decide_day(engine, tmp_path)
    tasks.queue(context(), clock=at(D, 6))
    assert tasks.dispatch_cycle(context(), clock=at(D, 6, 1))["deferred"] == 11
    assert tasks.sweep(context(), clock=at(D, 7, 5))["in_window"] is False
    assert tasks.sweep(context(), clock=at(D, 8, 5))["sent"] == 9
    assert message_counts(engine, D)["deferred"] == 0
    assert tasks.sweep(context(), clock=at(D, 9, 5)) == {"dates": []}
    assert len(gateway.requests) == 5


def test_the_window_is_the_variable_else_the_policy(monkeypatch):
    from datetime import time
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_CONTACT_WINDOW", "09:30-18:00")
    assert tasks.contact_window(context()) == (time(9, 30), time(18))
    monkeypatch.delenv("AIRFLOW_VAR_ARREARS_CONTACT_WINDOW")
    assert tasks.contact_window(context()) == (time(8), time(21))   # include/policy/default.toml


def test_permanent_failures_are_reported_in_the_task_log(env, tmp_path, caplog):
    engine, smtp, gateway, _ = env
    decide_day(engine, tmp_path)
    tasks.queue(context(), clock=at(D, 8, 30))
    with caplog.at_level("WARNING", logger="arrears"):
        tasks.dispatch_cycle(context(), clock=at(D, 8, 31))
    reported = [r.getMessage() for r in caplog.records if "not deliverable" in r.getMessage()]
    assert len(reported) == 2 and f"{D}:A7:email: 550" in reported[0] and "A7:sms: 400" in reported[1]


def test_connections_are_read_the_way_operators_write_them(monkeypatch):
    from arrears.delivery.transports import DeliveryError, SmsGatewayTransport, SmtpTransport
    from arrears.settings import get_connection
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMS", "https://:s3cret@gw.example:8443/v1/messages")
    sms = SmsGatewayTransport(get_connection("arrears_sms"))
    assert (sms.url, sms.token) == ("https://gw.example:8443/v1/messages", "s3cret")
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMS", json.dumps(
        {"conn_type": "http", "extra": {"url": "http://10.0.0.5/send", "timeout": 5}}))
    assert SmsGatewayTransport(get_connection("arrears_sms")).url == "http://10.0.0.5/send"

    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMTP", "smtp://user:pw@mail.example")
    smtps = SmtpTransport(get_connection("arrears_smtp")).options
    assert (smtps["ssl"], smtps["tls"], smtps["port"], smtps["user"]) == (True, False, 465, "user")
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMTP", json.dumps(
        {"conn_type": "smtp", "host": "mail.example", "port": 587, "extra": {"disable_ssl": "true"}}))
    starttls = SmtpTransport(get_connection("arrears_smtp"))
    assert (starttls.options["ssl"], starttls.options["tls"], starttls.options["port"]) == (False, True, 587)
    assert starttls.from_addr == "collections@utility.example"     # include/utility.toml
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMTP", json.dumps({"conn_type": "smtp"}))
    with pytest.raises(DeliveryError, match="no host: set it or delete the connection"):
        SmtpTransport(get_connection("arrears_smtp"))


@pytest.mark.parametrize("sessions, expected", [(None, 3), (1, 1), ("4", 4), (" 8 ", 8), (64, 64)])
def test_the_smtp_sessions_extra(monkeypatch, sessions, expected):
    from arrears.delivery.transports import SmtpTransport
    from arrears.settings import get_connection
    extra = {} if sessions is None else {"sessions": sessions}
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMTP", json.dumps(
        {"conn_type": "smtp", "host": "mail.example", "extra": extra}))
    assert SmtpTransport(get_connection("arrears_smtp")).sessions == expected


@pytest.mark.parametrize("sessions", [0, -1, 65, 2.5, 2.0, True, "", "two", "2.0", "١", None, [2]])
def test_a_hostile_smtp_sessions_extra_is_a_configuration_error(monkeypatch, sessions):
    from arrears.delivery.transports import DeliveryError, SmtpTransport
    from arrears.settings import get_connection
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMTP", json.dumps(
        {"conn_type": "smtp", "host": "mail.example", "extra": {"sessions": sessions}}))
    with pytest.raises(DeliveryError, match="extra.sessions must be a whole number from 1 to 64"):
        SmtpTransport(get_connection("arrears_smtp"))
