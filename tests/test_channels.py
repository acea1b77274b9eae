"""Channels as plug-ins (CONTRACT §7): the registry, slots and fallback in the policy, and the
four further channels end to end below the DAG: real decisions -> outbox -> real HTTP gateways
(WeChat, push, voice, SMS), a real SMTP server and real PDFs for post; each message once."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import text

from arrears.channels import NAMES
from arrears.channels.registry import registry
from arrears.cycle import decide as decide_step
from arrears.cycle.run import CycleRun
from arrears.delivery import tasks
from arrears.delivery.dispatch import dispatch
from arrears.delivery.outbox import Attempt, message_counts, queue_messages
from arrears.delivery.render import MESSAGES_DIR
from arrears.ingest import ingest_delivery
from arrears.model import ACTIONS, HOLDS, History
from arrears.policy import load_policy
from arrears.policy.business_days import BusinessCalendar
from arrears.policy.config import PolicyError, _merge, policy_from_dict
from arrears.policy.decide import plan_channels
from arrears.settings import Settings
from delivery_servers import ChannelGateway, SmsGateway, start_smtp
from factories import ACCOUNT_HEADER, BILL_HEADER, account, write_csv

D = date(2026, 11, 16)
TZ = "Asia/Shanghai"
WINDOW = (time(8), time(21))
POLICY = load_policy("wechat_first")

HEADER = [*ACCOUNT_HEADER, "wechat_openid", "app_user_id"]
ACCOUNTS = [
    # formal notice: WeChat, email, voice
    ["W1", "王伟", "residential", "北京市朝阳区人民路1号", "w1@example.com", "13900000001", "zh-CN", "", "", "oW1-openid", ""],
    # reminder, no openid: the app (push), email
    ["W2", "Jane Doe", "residential", "1 Main St", "w2@example.com", "13900000002", "en", "", "", "", "app-w2"],
    # formal notice: WeChat refuses the openid for good -> SMS the same day
    ["W3", "李娜", "residential", "上海市建设路2号", "w3@example.com", "13900000003", "zh-CN", "", "", "oREFUSED", ""],
    # formal notice, opted out of WeChat: SMS, email, voice
    ["W4", "Acme Ltd", "non_residential", "9 Dock Rd", "w4@example.com", "13900000004", "en", "", "wechat", "oW4-openid", ""],
    # escalation: WeChat, email, a letter by post
    ["W5", "张强", "residential", "广州市天河路5号", "w5@example.com", "13900000005", "zh-CN", "", "", "oW5-openid", ""],
]
BILLS = [
    ["B1", "W1", "2026-10", "200.00", "2026-10-27"],   # DPD 20
    ["B2", "W2", "2026-10", "300.00", "2026-11-13"],   # DPD 3
    ["B3", "W3", "2026-10", "500.00", "2026-10-27"],
    ["B4", "W4", "2026-10", "900.00", "2026-10-27"],
    ["B5", "W5", "2026-08", "400.00", "2026-09-01"],   # DPD 76
]


def at(day: date, hh: int, mm: int = 0):
    moment = datetime(day.year, day.month, day.day, hh, mm, tzinfo=timezone(timedelta(hours=8)))
    return lambda: moment


def decide_day(engine, tmp_path, day: date = D, policy=POLICY, accounts=ACCOUNTS):
    folder = tmp_path / "landing" / day.isoformat()
    write_csv(folder / "accounts.csv", HEADER, accounts)
    write_csv(folder / "open_items.csv", BILL_HEADER, BILLS)
    ingest_delivery(engine, folder, day, TZ)
    decide_step.stage_bills(engine, day)
    run = CycleRun(cycle_date=day, run_id=f"scheduled__{day}", run_type="scheduled")
    decide_step.decide_cycle(engine, run, policy, BusinessCalendar())
    return run


def outbox(engine) -> dict:
    with engine.connect() as conn:
        return {r[0]: r[1:] for r in conn.execute(text(
            "SELECT idem_key, status, attempts, last_error, fallback_of FROM outbox ORDER BY idem_key"))}


def send(engine, clock, transports=None, **kw):
    return dispatch(engine, transports or tasks.transports(Settings.load()), tz=TZ, window=WINDOW,
                    attempt=Attempt("run", "dispatch_messages", 1), dates=[D], clock=clock, **kw)


@pytest.fixture
def gateways(monkeypatch, tmp_path):
    controller, smtp = start_smtp()
    sms = SmsGateway()
    wechat = ChannelGateway("touser", wechat=True, refused={"oREFUSED"})
    push, voice = ChannelGateway("user_id"), ChannelGateway("to")
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": controller.port,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "billing@power.example"}}))
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMS", f"http://:tok3n@127.0.0.1:{sms.port}/v1/sms")
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_WECHAT", json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": wechat.port, "schema": "cgi-bin/message/template/send",
        "password": "wx-token", "extra": {"template_id": "TPL-ARREARS-1"}}))
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_PUSH", f"http://:p@127.0.0.1:{push.port}/v1/push")
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_VOICE", f"http://:v@127.0.0.1:{voice.port}/v1/calls")
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(tmp_path / "outbox"))
    servers = {"smtp": smtp, "sms": sms, "wechat": wechat, "push": push, "voice": voice}
    yield servers
    controller.stop()
    for name in ("sms", "wechat", "push", "voice"):
        servers[name].stop()


# --- the registry ------------------------------------------------------------------------------

def test_every_channel_folder_is_registered_and_declares_what_the_cycle_needs():
    folders = sorted(p.name for p in Path(registry()["email"].compose.__code__.co_filename).parent.parent.iterdir()
                     if p.is_dir() and (p / "__init__.py").exists())
    assert list(NAMES) == folders == ["email", "post", "push", "sms", "voice", "wechat"]
    for name, channel in registry().items():
        assert channel.name == name and name in ACTIONS and channel.opt_out_hold in HOLDS
        assert all((MESSAGES_DIR / t).is_file() for t in channel.templates), name
        assert channel.file_default(Path("/tmp/x")) is not None
    # The policy sees plain data only: names, address fields and the contact-limit flag.
    assert {r.name: r.address_field for r in POLICY.channel_rules} == {
        "email": "email", "post": "service_address", "push": "app_user_id", "sms": "mobile",
        "voice": "mobile", "wechat": "wechat_openid"}


@pytest.mark.parametrize("slots, problem", [
    (["wechat|fax"], "'fax'"), (["sms", "wechat|sms"], "two slots"), ([""], "no channel"),
    ("email", "must be a list")])
def test_a_bad_channels_section_is_refused_with_what_to_fix(slots, problem):
    raw = __import__("tomllib").loads((Path(MESSAGES_DIR).parents[1] / "policy" / "default.toml").read_text())
    with pytest.raises(PolicyError, match=problem):
        policy_from_dict(_merge(raw, {"channels": {"reminder": slots}}))


# --- slots, fallback and the limits in the pure policy ------------------------------------------

def plan(acct, hist=History(), stage="formal_notice"):
    reasons: list[str] = []
    return plan_channels(acct, set(), hist, D, D, POLICY, reasons, stage), reasons


def test_a_slot_uses_its_first_reachable_channel():
    assert plan(account(wechat_openid="oX"))[0] == ["wechat", "email", "voice"]
    got, reasons = plan(account())                                     # no openid
    assert got == ["sms", "email", "voice"] and "wechat:contact_gap" in reasons
    got, reasons = plan(account(wechat_openid="oX", opt_out="wechat"))
    assert got == ["sms", "email", "voice"] and "wechat:opted_out" in reasons
    # reminder: WeChat, else the app, else SMS
    assert plan(account(app_user_id="u1"), stage="reminder")[0] == ["push", "email"]
    assert plan(account(mobile="", email=""), stage="reminder")[0] == []
    # the default policy is today's behaviour: email and SMS
    assert plan_channels(account(wechat_openid="oX"), set(), History(), D, D, load_policy(), [],
                         "formal_notice") == ["email", "sms"]


def test_the_cap_counts_every_channel():
    hist = History(previous_stage="reminder", stage_entered_on=D - timedelta(days=20),
                   messages=((D - timedelta(days=2), "wechat"), (D - timedelta(days=3), "post")))
    got, reasons = plan(account(wechat_openid="oX"), hist)
    assert got == ["wechat"] and "email:cap_3_in_7_days" in reasons and "voice:cap_3_in_7_days" in reasons
    three = tuple((D - timedelta(days=1 + i), ch) for i, ch in enumerate(("voice", "push", "post")))
    got, reasons = plan(account(wechat_openid="oX"), History(messages=three))
    assert got == [] and "wechat:cap_3_in_7_days" in reasons


# --- the gateways, end to end --------------------------------------------------------------------

def test_each_channel_delivers_once_and_a_permanent_wechat_failure_falls_back_to_sms_once(
        engine, tmp_path, gateways):
    run = decide_day(engine, tmp_path)
    queued = queue_messages(engine, run, POLICY, "power.example", at(D, 8, 30)())
    rows = outbox(engine)
    assert rows[f"{D}:W3:sms"][0] == "standby" and rows[f"{D}:W3:sms"][3] == f"{D}:W3:wechat"
    assert queued.standby == 4   # W1, W3, W5 (WeChat) and W2 (push) have a mobile behind
    result = send(engine, at(D, 9))
    wechat, sms, push, voice, smtp = (gateways[n] for n in ("wechat", "sms", "push", "voice", "smtp"))
    assert {m["touser"] for m in wechat.sent} == {"oW1-openid", "oW5-openid"}
    first = next(m for m in wechat.sent if m["touser"] == "oW1-openid")
    assert first["template_id"] == "TPL-ARREARS-1" and first["client_msg_id"] == f"{D}:W1:wechat"
    assert set(first["data"]) == {"first", "keyword1", "keyword2", "keyword3", "remark"}
    assert first["data"]["keyword2"] == {"value": "200.00"} and wechat.requests[0]["auth"] == "Bearer wx-token"
    # W3's WeChat failed for good (errcode 43004): its SMS went out the same day, once; W4 opted out.
    rows = outbox(engine)
    assert rows[f"{D}:W3:wechat"][0] == "permanent_failure" and "43004" in rows[f"{D}:W3:wechat"][2]
    assert rows[f"{D}:W3:sms"][0] == "sent" and result.fell_back == 1
    assert sorted(s["to"] for s in sms.sent) == ["+8613900000003", "+8613900000004"]
    assert [m["user_id"] for m in push.sent] == ["app-w2"] and push.sent[0]["title"].startswith("Friendly reminder")
    assert sorted(v["to"] for v in voice.sent) == ["+8613900000001", "+8613900000003", "+8613900000004"]
    assert "按9" in next(v["script"] for v in voice.sent if v["to"] == "+8613900000001")
    assert len(smtp.messages) == 5
    assert rows[f"{D}:W1:sms"][0] == "standby"            # not needed: WeChat delivered
    post = sorted((tmp_path / "outbox" / D.isoformat() / "post").glob("*.pdf"))
    assert [p.name for p in post] == ["W5.pdf"]
    # Again (a retry, a rerun of the dispatch): nothing new anywhere.
    assert send(engine, at(D, 9, 30)).sent == 0
    again = queue_messages(engine, decide_day(engine, tmp_path), POLICY, "power.example", at(D, 10)())
    assert again.queued == again.standby == 0 and send(engine, at(D, 10, 1)).sent == 0
    assert (len(wechat.requests), len(sms.requests), len(push.requests), len(voice.requests)) == (3, 2, 1, 3)
    counts = message_counts(engine, D)
    assert (counts["sent"], counts["permanent_failure"], counts["standby"]) == (14, 1, 3)


def test_a_crash_mid_batch_on_wechat_is_resent_after_the_lease_and_arrives_once(engine, tmp_path, gateways):
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "power.example", at(D, 8, 30)())
    transports = tasks.transports(Settings.load())
    real = transports["wechat"]

    class DiesAfterFirstSend:
        name = "dies"

        def session(self, day):
            import contextlib

            @contextlib.contextmanager
            def cm():
                with real.session(day) as send_one:
                    def send_then_die(msg):
                        send_one(msg)
                        raise SystemExit("worker killed")   # after WeChat accepted it
                    yield send_then_die
            return cm()

    transports["wechat"] = DiesAfterFirstSend()
    with pytest.raises(SystemExit):
        send(engine, at(D, 9), transports)
    stuck = [k for k, v in outbox(engine).items() if v[0] == "sending"]
    assert stuck == [f"{D}:W1:wechat"]
    # A second dispatcher within the lease sends the rest and leaves it alone ...
    within = send(engine, at(D, 9, 5))
    assert within.fell_back == 1 and outbox(engine)[stuck[0]][0] == "sending"
    later = send(engine, at(D, 9, 30))                  # ... after the 15-minute lease, resent
    assert outbox(engine)[stuck[0]][:2] == ("sent", 2) and later.sent == 1
    wechat = gateways["wechat"]
    assert sorted(m["touser"] for m in wechat.sent) == ["oW1-openid", "oW5-openid"]
    assert [r["key"] for r in wechat.requests].count(f"{D}:W1:wechat") == 2   # deduped by client_msg_id


def test_a_wechat_outage_stops_only_wechat_and_the_next_attempt_sends_the_rest(
        engine, tmp_path, gateways, monkeypatch):
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "power.example", at(D, 8, 30)())
    gateways["wechat"].stop()
    first = send(engine, at(D, 9))
    assert "wechat" in first.outage and first.retry_wanted and first.fell_back == 0
    assert len(gateways["voice"].sent) == 3 and len(gateways["smtp"].messages) == 5
    back = ChannelGateway("touser", wechat=True, refused={"oREFUSED"})
    try:
        monkeypatch.setenv("AIRFLOW_CONN_ARREARS_WECHAT", f"http://:wx@127.0.0.1:{back.port}/send")
        second = send(engine, at(D, 9, 20))
        assert second.fell_back == 1 and not second.outage
        assert sorted(m["touser"] for m in back.sent) == ["oW1-openid", "oW5-openid"]
        assert sorted(s["to"] for s in gateways["sms"].sent) == ["+8613900000003", "+8613900000004"]
        assert len(gateways["voice"].requests) == 3   # nothing resent elsewhere
    finally:
        back.stop()


def test_calls_wait_for_the_contact_window_while_letters_go_out(engine, tmp_path, gateways):
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "power.example", at(D, 6)())
    early = send(engine, at(D, 7))
    assert not early.in_window and early.sent == 1           # the letter by post
    assert gateways["voice"].requests == [] and gateways["wechat"].requests == []
    assert outbox(engine)[f"{D}:W1:voice"][0] == "deferred"
    assert send(engine, at(D, 8, 0)).sent == 13


# --- the embedded defaults: files ----------------------------------------------------------------

def test_without_connections_each_channel_writes_its_file_once_and_post_is_byte_identical(
        engine, tmp_path, monkeypatch, db_url):
    for name in ("SMTP", "SMS", "WECHAT", "PUSH", "VOICE"):
        monkeypatch.delenv(f"AIRFLOW_CONN_ARREARS_{name}", raising=False)
    out = tmp_path / "outbox"
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(out))
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "utility.example", at(D, 8)())
    assert send(engine, at(D, 8, 1)).sent == 14          # files accept every address (W3's WeChat too)
    day = out / D.isoformat()
    lines = {f: (day / f).read_text().splitlines() for f in ("wechat.jsonl", "push.jsonl", "voice.jsonl")}
    assert [len(v) for v in lines.values()] == [3, 1, 3]
    w1 = json.loads(lines["wechat.jsonl"][0])
    assert w1["touser"] == "oW1-openid" and w1["idempotency_key"] == f"{D}:W1:wechat"
    assert w1["template_id"] and w1["data"]["keyword1"] == {"value": "W1"}
    pdf = day / "post" / "W5.pdf"
    reader = PdfReader(pdf)
    page = reader.pages[0].extract_text()
    assert "张强" in page and "广州市天河路5号" in page and "停电预先通知" in page
    manifest = (day / "post" / "manifest.csv").read_text().splitlines()
    assert manifest[0] == "account_id,file,idem_key,sha256" and manifest[1].startswith(f"W5,W5.pdf,{D}:W5:post,")
    before = {p.name: p.read_bytes() for p in (day / "post").iterdir()}
    # A crash after the files were written, before the outbox said so: resent, nothing changes.
    with engine.begin() as conn:
        conn.execute(text("UPDATE outbox SET status = 'sending', claimed_at = '2000-01-01T00:00:00.000000Z'"
                          " WHERE status = 'sent'"))
    assert send(engine, at(D, 9)).sent == 14
    assert {f: (day / f).read_text().splitlines() for f in lines} == lines
    assert {p.name: p.read_bytes() for p in (day / "post").iterdir()} == before


def test_per_channel_counts_reach_the_summary_and_the_report(engine, tmp_path, gateways):
    from arrears.delivery.receipts import record_receipt
    from arrears.report.cycle_report import render
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "power.example", at(D, 8, 30)())
    send(engine, at(D, 9))
    now = datetime(2026, 11, 16, 3, tzinfo=timezone.utc)
    record_receipt(engine, {"key": f"{D}:W1:wechat", "status": "delivered"}, "gw", now, TZ, "wechat")
    record_receipt(engine, {"channel": "sms", "address": "+8613900000004", "reply": "退订"}, "gw", now, TZ)
    channels = tasks.summary_channels(engine, D)
    assert channels["wechat"] == {"sent": 2, "permanent_failure": 1, "delivered": 1, "receipts": 1}
    assert channels["sms"] == {"sent": 2, "standby": 3, "replies": 1, "opt_outs": 1}
    assert channels["post"] == {"sent": 1} and channels["voice"] == {"sent": 3}
    html, summary = render(engine, tmp_path / "outbox", D)
    assert summary["messages"]["sms"]["opt_outs"] == 1 and "<th>opt_outs</th>" in html


def test_a_permanent_failure_is_a_contact_gap_until_the_extract_gives_another_address(
        engine, tmp_path, gateways):
    run = decide_day(engine, tmp_path)
    queue_messages(engine, run, POLICY, "power.example", at(D, 8, 30)())
    send(engine, at(D, 9))                      # W3's openid refused for good (43004)
    from arrears.records.service import record_service   # the cycle's step after dispatch
    from arrears.policy.business_days import BusinessCalendar
    record_service(engine, TZ, POLICY, BusinessCalendar())
    d1, d2 = D + timedelta(days=7), D + timedelta(days=14)   # past the repeat wait and the cap

    def reasons(day):
        with engine.connect() as conn:
            return conn.execute(text("SELECT reasons, actions FROM decisions WHERE cycle_date = :d"
                                     " AND account_id = 'W3'"), {"d": day}).one()
    decide_day(engine, tmp_path, d1)
    assert "wechat:contact_gap:permanent_failure" in reasons(d1).reasons
    assert "sms" in reasons(d1).actions.split(";") and "wechat" not in reasons(d1).actions.split(";")
    # Only that address: W1's WeChat, which worked, is still used; a new openid is tried again.
    assert "wechat:due" in decide_step_reasons(engine, d1, "W1")
    new = [row[:9] + ["oW3-new", ""] if row[0] == "W3" else row for row in ACCOUNTS]
    decide_day(engine, tmp_path, d2, accounts=new)
    assert "wechat:due" in reasons(d2).reasons


def decide_step_reasons(engine, day, account_id):
    with engine.connect() as conn:
        return conn.execute(text("SELECT reasons FROM decisions WHERE cycle_date = :d AND account_id = :a"),
                            {"d": day, "a": account_id}).scalar_one()
