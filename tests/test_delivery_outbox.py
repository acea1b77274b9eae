"""Delivery end to end below the DAG: real decisions -> outbox -> a real SMTP server (aiosmtpd)
and a real HTTP SMS gateway; each message arrives once, whatever fails in between."""
from __future__ import annotations

import email as email_lib
import json
from email import policy as email_policy
from datetime import date, datetime, time, timedelta, timezone

import pytest
from sqlalchemy import text

from arrears.cycle import decide as decide_step
from arrears.cycle.run import CycleRun
from arrears.delivery import tasks
from arrears.delivery.dispatch import dispatch
from arrears.delivery.outbox import Attempt, message_counts, queue_messages
from arrears.ingest import ingest_delivery
from arrears.policy import load_policy
from arrears.policy.business_days import BusinessCalendar
from arrears.settings import Settings
from delivery_servers import SmsGateway, start_smtp
from factories import landing

D = date(2026, 11, 16)
TZ = "Asia/Shanghai"
WINDOW = (time(8), time(21))
POLICY = load_policy()

ACCOUNTS = [
    ["A1", "王伟", "residential", "北京市朝阳区人民路1号", "a1@example.com", "13900000001", "zh-CN", "", ""],
    ["A2", "Jane Doe", "residential", "1 Main St", "a2@example.com", "13900000002", "en", "", ""],
    ["A3", "李娜", "residential", "上海市浦东新区建设路2号", "a3@example.com", "13900000003", "zh-CN", "", ""],
    ["A4", "<script>alert('x')</script>", "residential", "", "a4@example.com", "13900000004", "en", "", ""],
    ["A5", "Acme Ltd", "non_residential", "", "a5@example.com", "13900000005", "en", "", "sms"],
    ["A6", "张强", "residential", "", "a6@example.com", "13900000006", "zh-CN", "", ""],
    ["A7", "刘洋", "residential", "", "bounce@example.com", "13900000099", "zh-CN", "", ""],
]
BILLS = [
    ["B1", "A1", "2026-10", "200.00", "2026-11-13"],   # reminder
    ["B2", "A2", "2026-09", "300.00", "2026-10-27"],   # formal notice
    ["B3", "A3", "2026-08", "500.00", "2026-09-01"],   # escalation: pre-notice + disconnection
    ["B4", "A4", "2026-10", "80.00", "2026-11-12"],    # reminder
    ["B5", "A5", "2026-10", "900.00", "2026-11-01"],   # formal notice, email only
    ["B6", "A6", "2026-08", "300.00", "2026-09-15"],   # deceased: nothing
    ["B7", "A7", "2026-10", "120.00", "2026-11-10"],   # bad address and bad number
]
EVENTS = [["E6", "A6", "deceased", "2026-10-01", "", "", ""]]
EXPECTED_EMAIL = {"a1@example.com", "a2@example.com", "a3@example.com", "a4@example.com",
                  "a5@example.com"}
EXPECTED_SMS = {"+8613900000001", "+8613900000002", "+8613900000003", "+8613900000004"}


def at(day: date, hh: int, mm: int = 0):
    """A clock frozen at HH:MM of ``day`` in the utility's time zone."""
    moment = datetime(day.year, day.month, day.day, hh, mm, tzinfo=timezone(timedelta(hours=8)))
    return lambda: moment


def decide_day(engine, tmp_path, day: date = D, run_type: str = "scheduled", bills=BILLS,
               allow_contact: bool = False):
    folder = landing(tmp_path / "landing" / day.isoformat(), ACCOUNTS, bills, [], EVENTS)
    ingest_delivery(engine, folder, day, TZ)
    decide_step.stage_bills(engine, day)
    run = CycleRun(cycle_date=day, run_id=f"{run_type}__{day}", run_type=run_type,
                   allow_contact=allow_contact)
    decide_step.decide_cycle(engine, run, POLICY, BusinessCalendar())
    return run


@pytest.fixture
def servers(monkeypatch, tmp_path):
    controller, smtp = start_smtp()
    gateway = SmsGateway()
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": controller.port,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "billing@power.example"}}))
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMS", f"http://:tok3n@127.0.0.1:{gateway.port}/v1/sms")
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(tmp_path / "outbox"))
    running = [controller]
    yield running, smtp, gateway
    running[-1].stop()
    gateway.stop()


def send(engine, clock, dates=(D,), **kw):
    settings = Settings.load()
    return dispatch(engine, tasks.transports(settings), tz=TZ, window=WINDOW,
                    attempt=Attempt("run", "dispatch_messages", 1), dates=dates, clock=clock, **kw)


def built_by_emails_alone(engine, from_addr: str) -> list[bytes]:
    """Each sent email's bytes as the ``emails`` package builds them with its own defaults (no
    header folded from memory), as the SMTP server receives them (smtplib ends DATA with a line
    break)."""
    from arrears.delivery.transports import OutboxMessage, build_email
    with engine.connect() as conn:
        sent = conn.execute(text(
            "SELECT idem_key, cycle_date, account_id, channel, address, subject, body_text,"
            " body_html, message_id, queued_at FROM outbox WHERE channel = 'email'"
            " AND status = 'sent'")).all()
    built = []
    for row in sent:
        message = build_email(OutboxMessage(*[str(v) for v in row]), from_addr)
        message.policy = None
        built.append(message.as_bytes().removesuffix(b"\r\n") + b"\r\n")
    return built


def outbox(engine) -> dict:
    with engine.connect() as conn:
        return {r[0]: r[1:] for r in conn.execute(text(
            "SELECT idem_key, status, attempts, last_error, gateway_answer, message_id"
            " FROM outbox ORDER BY idem_key"))}


def test_each_message_arrives_once_and_a_rerun_sends_nothing_new(engine, tmp_path, servers):
    _, smtp, gateway = servers
    run = decide_day(engine, tmp_path)
    first = queue_messages(engine, run, POLICY, "power.example", at(D, 8, 30)())
    assert first.queued == 11  # 6 emails (A7's will bounce) + 5 SMS (A7's number is refused)
    result = send(engine, at(D, 8, 31))
    assert (result.sent, result.permanent_failure, result.failed) == (9, 2, 0)

    assert {m["To"] for m in smtp.messages} == EXPECTED_EMAIL
    assert len(smtp.messages) == len(EXPECTED_EMAIL)
    assert {s["to"] for s in gateway.sent} == EXPECTED_SMS and len(gateway.sent) == 4
    assert all(r["auth"] == "Bearer tok3n" and r["path"] == "/v1/sms" for r in gateway.requests)
    rows = outbox(engine)
    # The deterministic Message-ID is what arrived; the gateway's receipt is recorded.
    a1 = rows[f"{D}:A1:email"]
    assert a1[0] == "sent" and a1[4] in smtp.message_ids() and a1[4].endswith("@power.example>")
    assert json.loads(rows[f"{D}:A1:sms"][3].split(" ", 1)[1])["status"] == "accepted"
    assert rows[f"{D}:A7:email"][:2] == ("permanent_failure", 1) and "550" in rows[f"{D}:A7:email"][2]
    assert rows[f"{D}:A7:sms"][0] == "permanent_failure" and "400" in rows[f"{D}:A7:sms"][2]
    assert f"{D}:A6:email" not in rows  # deceased: the policy queued nothing
    # What the server received is, byte for byte, what `emails` left alone builds from each row.
    assert sorted(smtp.raw) == sorted(built_by_emails_alone(engine, "billing@power.example"))
    # The holder name with <script> arrives escaped in the HTML part, as typed in the text part.
    a4 = next(m for m in smtp.messages if m["To"] == "a4@example.com")
    html = a4.get_body(("html",)).get_content()
    assert "Dear &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;," in html and "<script>" not in html
    assert "Dear <script>alert('x')</script>," in a4.get_body(("plain",)).get_content()
    # Each message names its own holder and no other account's holder.
    holders = {row[0]: row[1] for row in ACCOUNTS}
    for m in smtp.messages:
        own = next(a for a, row in zip(holders, ACCOUNTS) if row[4] == m["To"])
        body = m.get_body(("plain",)).get_content()
        assert holders[own] in body and not [h for a, h in holders.items() if a != own and h in body]

    # A rerun of the same date (decide again, queue again, dispatch again): nothing new.
    run = decide_day(engine, tmp_path)
    again = queue_messages(engine, run, POLICY, "power.example", at(D, 9)())
    assert (again.queued, again.rewritten, again.unchanged) == (0, 0, 11)
    assert send(engine, at(D, 9, 1)).sent == 0
    assert len(smtp.messages) == 5 and len(gateway.requests) == 5
    counts = message_counts(engine, D)
    assert (counts["sent"], counts["permanent_failure"], counts["deferred"], counts["failed"]) == (9, 2, 0, 0)


def test_a_failure_mid_batch_then_a_retry_delivers_each_exactly_once(engine, tmp_path, servers):
    _, smtp, gateway = servers
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "power.example", at(D, 8, 30)())
    smtp.fail_after, gateway.fail_after = 2, 1      # the servers give up part-way
    first = send(engine, at(D, 8, 31), chunk=2)
    assert first.sent == 3 and first.failed == 6 and first.retry_wanted
    assert len(smtp.messages) == 2 and len(gateway.sent) == 1

    smtp.fail_after = gateway.fail_after = None     # servers recover; the task's retry runs
    second = send(engine, at(D, 8, 40), chunk=2)
    assert second.sent == 6 and not second.retry_wanted
    assert sorted(m["To"] for m in smtp.messages) == sorted(EXPECTED_EMAIL)
    assert sorted(s["to"] for s in gateway.sent) == sorted(EXPECTED_SMS)
    assert len(set(smtp.message_ids())) == len(smtp.messages)
    retried = outbox(engine)[f"{D}:A5:email"]
    assert retried[:2] == ("sent", 2)


def test_an_outage_stops_the_batch_and_the_next_attempt_sends_the_rest(engine, tmp_path, servers):
    running, smtp, gateway = servers
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "power.example", at(D, 8, 30)())
    port = running[0].port
    running[0].stop()                               # the SMTP server is down
    first = send(engine, at(D, 8, 31))
    assert "email" in first.outage and first.retry_wanted
    rows = outbox(engine)
    email_rows = {k: v for k, v in rows.items() if k.endswith(":email")}
    # Only the first message met the outage; the others were not even tried.
    assert sorted(v[1] for v in email_rows.values()) == [0, 0, 0, 0, 0, 1]
    assert len(gateway.sent) == 4                   # SMS is a separate channel: it went out
    running.append(start_smtp(smtp, port)[0])      # ... and back
    second = send(engine, at(D, 8, 45))
    assert second.sent == 5 and {m["To"] for m in smtp.messages} == EXPECTED_EMAIL
    assert len(gateway.requests) == 5               # nothing resent to the gateway


def test_a_large_batch_goes_over_two_sessions_each_message_once(engine, tmp_path, servers,
                                                              monkeypatch):
    """More messages than ``sessions_from``: the chunks go out from 2 session processes at once
    (the connection's ``sessions``), each claimed by one of them only."""
    import os
    _, smtp, gateway = servers
    connection = json.loads(os.environ["AIRFLOW_CONN_ARREARS_SMTP"])
    connection["extra"]["sessions"] = 2
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMTP", json.dumps(connection))
    smtp.track_senders = True
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "power.example", at(D, 8, 30)())
    smtp.fail_after = 3                             # then the server refuses for now (451)
    first = send(engine, at(D, 8, 31), chunk=1, sessions_from=2)
    assert (first.sent, first.failed, first.permanent_failure) == (3 + 4, 2, 2)  # 4 SMS
    senders = set(smtp.senders)
    assert len(senders) == 2 and os.getpid() not in senders and None not in senders
    rows = outbox(engine)
    assert {v[0] for k, v in rows.items() if k.endswith(":email")} == {"sent", "failed",
                                                                       "permanent_failure"}
    assert all(v[4] in smtp.message_ids() and v[3].startswith("250 ")
               for k, v in rows.items() if k.endswith(":email") and v[0] == "sent")

    smtp.fail_after = None                          # the retry sends the 2 that failed, only them
    second = send(engine, at(D, 8, 40), chunk=1, sessions_from=2)
    assert second.sent == 2 and not second.retry_wanted
    assert sorted(m["To"] for m in smtp.messages) == sorted(EXPECTED_EMAIL)
    assert len(set(smtp.message_ids())) == len(smtp.messages) == 5


def test_a_task_that_may_not_start_processes_sends_from_its_own(engine, tmp_path, servers,
                                                                monkeypatch, caplog):
    import os

    from arrears import processes
    from factories import DaemonicPool
    _, smtp, _ = servers
    smtp.track_senders = True
    monkeypatch.setattr(processes, "ProcessPoolExecutor", DaemonicPool)
    queue_messages(engine, decide_day(engine, tmp_path), POLICY, "power.example", at(D, 8, 30)())
    assert send(engine, at(D, 8, 31), chunk=1, sessions_from=2).sent == 5 + 4
    assert set(smtp.senders) == {os.getpid()} and len(smtp.messages) == 5
    assert "smtp sessions: no worker processes" in caplog.text


def test_an_outage_stops_every_session_and_the_next_attempt_sends_the_rest(engine, tmp_path,
                                                                          servers):
    running, smtp, _ = servers
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "power.example", at(D, 8, 30)())
    port = running[0].port
    running[0].stop()                               # the SMTP server is down
    first = send(engine, at(D, 8, 31), chunk=1, sessions_from=2)
    assert "email" in first.outage and first.retry_wanted and first.sent == 4  # the SMS
    email_rows = {k: v for k, v in outbox(engine).items() if k.endswith(":email")}
    # At most one message per session (the connection's default number) met the outage; none
    # is left claimed.
    from arrears.delivery.transports import SMTP_SESSIONS
    assert {v[0] for v in email_rows.values()} <= {"queued", "failed"}
    assert 1 <= sum(v[1] for v in email_rows.values()) <= SMTP_SESSIONS
    running.append(start_smtp(smtp, port)[0])      # ... and back
    second = send(engine, at(D, 8, 45), chunk=1, sessions_from=2)
    assert second.sent == 5 and {m["To"] for m in smtp.messages} == EXPECTED_EMAIL
    assert len(smtp.messages) == 5


def test_a_worker_killed_mid_send_is_resolved_after_its_lease(engine, tmp_path, servers):
    _, smtp, gateway = servers
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "power.example", at(D, 8, 30)())
    settings = Settings.load()
    transports = tasks.transports(settings)
    real = transports["sms"]

    class DiesAfterThirdSend:
        name = "dies"

        def session(self, day):
            import contextlib

            @contextlib.contextmanager
            def cm():
                with real.session(day) as send_one:
                    count = {"n": 0}

                    def send_then_maybe_die(msg):
                        answer = send_one(msg)
                        count["n"] += 1
                        if count["n"] == 3:
                            raise SystemExit("worker killed")  # after the gateway accepted it
                        return answer
                    yield send_then_maybe_die
            return cm()

    transports["sms"] = DiesAfterThirdSend()
    with pytest.raises(SystemExit):
        dispatch(engine, transports, tz=TZ, window=WINDOW, attempt=Attempt("r", "t", 1),
                 dates=[D], clock=at(D, 8, 31))
    stuck = [k for k, v in outbox(engine).items() if v[0] == "sending"]
    assert len(stuck) == 1 and stuck[0].endswith(":sms")
    # A second dispatcher within the lease leaves it alone (the first might still be working) ...
    assert send(engine, at(D, 8, 35)).skipped == 0
    assert outbox(engine)[stuck[0]][0] == "sending"
    # ... after the lease it is sent again under the same key: the gateway dedupes it.
    later = send(engine, at(D, 9, 0))
    assert later.sent == 1 and outbox(engine)[stuck[0]][:2] == ("sent", 2)
    assert len(gateway.sent) == 4 and sorted(s["to"] for s in gateway.sent) == sorted(EXPECTED_SMS)
    assert len(smtp.messages) == 5


def test_outside_the_window_messages_wait_and_go_out_when_it_opens(engine, tmp_path, servers):
    _, smtp, gateway = servers
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "power.example", at(D, 6, 0)())
    early = send(engine, at(D, 7, 59))
    assert not early.in_window and early.deferred == 11 and early.sent == 0
    assert smtp.messages == [] and gateway.requests == []
    assert message_counts(engine, D)["deferred"] == 11
    late = send(engine, at(D, 21, 0))               # the window is 08:00-21:00: 21:00 is out
    assert not late.in_window
    opened = send(engine, at(D, 8, 0))
    assert opened.sent == 9 and len(smtp.messages) == 5


def test_a_message_left_unsent_expires_once_a_later_date_decides(engine, tmp_path, servers):
    _, smtp, gateway = servers
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "power.example", at(D, 22)())
    send(engine, at(D, 22, 5))                      # deferred: the cycle ran after 21:00
    decide_day(engine, tmp_path, D + timedelta(days=1))
    result = send(engine, at(D + timedelta(days=1), 8, 30))
    assert result.expired == 11 and result.sent == 0
    assert smtp.messages == [] and gateway.requests == []
    assert message_counts(engine, D)["expired"] == 11


def test_a_replay_queues_nothing(engine, tmp_path, servers):
    run = decide_day(engine, tmp_path, run_type="backfill")
    assert run.replay
    result = queue_messages(engine, run, POLICY, "power.example", at(D, 9)())
    assert result.replay and result.queued == 0 and outbox(engine) == {}
    # With allow_contact the backfill decides the real record (not a replay) and queues it.
    allowed = decide_day(engine, tmp_path, run_type="backfill", allow_contact=True)
    assert queue_messages(engine, allowed, POLICY, "power.example", at(D, 9)()).queued == 11


def test_a_rerun_with_new_data_cancels_what_is_no_longer_due(engine, tmp_path, servers):
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "power.example", at(D, 6)())
    # The folder is re-delivered: A1 has paid in full (its bill is gone).
    run = decide_day(engine, tmp_path, bills=[b for b in BILLS if b[1] != "A1"])
    again = queue_messages(engine, run, POLICY, "power.example", at(D, 6, 30)())
    assert again.cancelled == 2
    assert send(engine, at(D, 9)).sent == 7
    assert outbox(engine)[f"{D}:A1:email"][0] == "cancelled"


def test_without_connections_mail_and_sms_go_to_files_exactly_once(engine, tmp_path, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_ARREARS_SMTP", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_ARREARS_SMS", raising=False)
    out = tmp_path / "outbox"
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(out))
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "utility.example", at(D, 8)())
    assert send(engine, at(D, 8, 1)).sent == 11   # files accept every address
    mail = sorted((out / D.isoformat() / "mail").glob("*.eml"))
    assert len(mail) == 6
    first_bytes = {p.name: p.read_bytes() for p in mail}
    lines = (out / D.isoformat() / "sms.jsonl").read_text().splitlines()
    assert len(lines) == 5
    # A crash after the append but before the outbox said so: the retry must not append again.
    with engine.begin() as conn:
        conn.execute(text("UPDATE outbox SET status = 'sending', claimed_at = '2000-01-01T00:00:00.000000Z'"))
    assert send(engine, at(D, 9)).sent == 11
    assert (out / D.isoformat() / "sms.jsonl").read_text().splitlines() == lines
    assert {p.name: p.read_bytes() for p in mail} == first_bytes  # same bytes: same message
    eml = email_lib.message_from_bytes(first_bytes[f"{D}_A4_email.eml"], policy=email_policy.default)
    assert eml["Message-ID"].endswith("@utility.example>") and eml["To"] == "a4@example.com"
    html = eml.get_body(("html",)).get_content()
    assert "Dear &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;," in html and "<script>" not in html


def test_a_message_that_keeps_failing_is_given_up_after_5_attempts(engine, tmp_path, servers):
    _, smtp, gateway = servers
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "power.example", at(D, 8)())
    gateway.fail_after = 0                          # the gateway answers 503 to every send
    for minute in range(1, 6):
        result = send(engine, at(D, 9, minute))
    assert result.permanent_failure == 4 and result.failed == 0  # A7's number failed for good at once
    row = outbox(engine)[f"{D}:A1:sms"]
    assert row[:2] == ("permanent_failure", 5) and row[2].startswith("gave up after 5 attempts: 503")
    assert send(engine, at(D, 9, 30)).sent == 0 and len(gateway.requests) == 4 * 5 + 1
    assert message_counts(engine, D)["permanent_failure"] == 6


def test_a_torn_last_line_in_sms_jsonl_is_closed_and_its_message_written_again(tmp_path):
    from arrears.delivery.transports import OutboxMessage, SmsJsonlTransport
    folder = tmp_path / D.isoformat()
    folder.mkdir()
    (folder / "sms.jsonl").write_bytes(b'{"idempotency_key": "2026-11-16:A1:sms", "to": "+86')  # crash
    msg = OutboxMessage(f"{D}:A1:sms", str(D), "A1", "sms", "+8613900000001", "", "hello", "",
                        "<m@x>", "2026-11-16T00:30:00.000000Z")
    transport = SmsJsonlTransport(tmp_path)
    with transport.session(str(D)) as send_one:
        assert send_one(msg) == "appended to sms.jsonl"
        assert send_one(msg) == "already in sms.jsonl"
    lines = (folder / "sms.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["idempotency_key"] == f"{D}:A1:sms"
