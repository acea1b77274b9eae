"""`POST /arrears/api/receipts` on a running api-server (CONTRACT §7): Airflow authentication or
a gateway's HMAC signature, receipts once per key, a failed receipt falling back within the slot,
opt-out replies that hold whatever later extracts say until the customer opts in again."""
from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from api_server import running_api_server, token
from arrears.audit import trail
from arrears.channels.registry import registry
from arrears.db import connect
from arrears.delivery.dispatch import dispatch
from arrears.delivery.outbox import Attempt, queue_messages
from test_channels import ACCOUNTS, POLICY, TZ, WINDOW, D, at, decide_day

AGENT, PASSWORD = "ops.wang", "Ops-Pass-2026"
SECRET = "sms-gateway-shared-secret"


def cycle(engine, tmp, day, accounts=ACCOUNTS):
    return decide_day(engine, tmp, day, accounts=accounts)


@pytest.fixture(scope="module")
def server(tmp_path_factory, airflow_home):
    tmp = tmp_path_factory.mktemp("receipts")
    db = tmp / "arrears.db"
    engine = connect(f"sqlite:///{db}")
    run = cycle(engine, tmp, D)
    queue_messages(engine, run, POLICY, "power.example", at(D, 8)())
    files = {n: c.file_default(tmp / "outbox") for n, c in registry().items()}
    dispatch(engine, files, tz=TZ, window=WINDOW, attempt=Attempt("r", "t", 1), dates=[D],
             clock=at(D, 8, 5))
    sms = json.dumps({"conn_type": "http", "host": "127.0.0.1", "extra": {"receipt_secret": SECRET}})
    with running_api_server(tmp, db, {AGENT: ("user", PASSWORD)},
                            {"AIRFLOW_CONN_ARREARS_SMS": sms}) as base:
        yield base, engine, tmp


def post(base: str, body, bearer: str | None = None, headers: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body, ensure_ascii=False).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if bearer:
        all_headers["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(base + "/arrears/api/receipts", method="POST", data=data,
                                     headers=all_headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def signed(body, secret: str = SECRET, connection: str = "arrears_sms") -> dict:
    raw = json.dumps(body, ensure_ascii=False).encode()
    return {"X-Arrears-Connection": connection,
            "X-Arrears-Signature": "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()}


def outbox_row(engine, key):
    with engine.connect() as conn:
        return conn.execute(text("SELECT status, receipt, receipt_at FROM outbox WHERE idem_key = :k"),
                            {"k": key}).one()


def test_refused_without_authentication_or_with_a_wrong_signature(server):
    base, engine, _ = server
    body = {"key": f"{D}:W1:wechat", "status": "delivered"}
    assert post(base, body)[0] == 401
    assert post(base, body, bearer="not.a.jwt")[0] in (401, 403)
    assert post(base, body, headers=signed(body, "wrong-secret"))[0] == 401
    assert post(base, body, headers=signed(body, connection="arrears_push"))[0] == 401  # no secret
    assert outbox_row(engine, f"{D}:W1:wechat").receipt == ""


def test_a_receipt_is_recorded_once_and_a_repeat_changes_nothing(server):
    base, engine, _ = server
    jwt = token(base, AGENT, PASSWORD)
    body = {"key": f"{D}:W1:wechat", "status": "delivered", "detail": {"msgid": 1}}
    status, answer = post(base, body, jwt)
    assert status == 201 and answer["recorded_by"] == AGENT and answer["channel"] == "wechat"
    first = outbox_row(engine, f"{D}:W1:wechat")
    assert first.receipt == "delivered" and first.status == "sent"
    status, answer = post(base, {**body, "status": "failed"}, jwt)    # a repeat, even a different one
    assert (status, answer["status"]) == (200, "duplicate")
    assert outbox_row(engine, f"{D}:W1:wechat") == first
    assert post(base, {"key": f"{D}:NOBODY:sms", "status": "delivered"}, jwt)[0] == 404
    assert post(base, {"key": f"{D}:W1:wechat", "status": "read"}, jwt)[0] == 422
    assert post(base, ["not", "an", "object"], jwt)[0] == 422
    with engine.connect() as conn:
        audit = [e for e in trail.entries(conn, kind="receipt") if e.payload["event"] == "receipt"]
    assert [(e.account_id, e.payload["status"], e.payload["posted_by"]) for e in audit] == [
        ("W1", "delivered", AGENT)]


def test_a_gateway_signs_for_its_own_channel_only(server):
    base, engine, _ = server
    body = {"key": f"{D}:W4:sms", "status": "delivered"}
    status, answer = post(base, body, headers=signed(body))
    assert status == 201 and answer["recorded_by"] == "hmac:arrears_sms"
    other = {"key": f"{D}:W4:email", "status": "delivered"}
    assert post(base, other, headers=signed(other))[0] == 404   # not an SMS message
    assert outbox_row(engine, f"{D}:W4:email").receipt == ""


def test_a_failed_receipt_unserves_the_message_and_falls_back_in_the_slot(server):
    base, engine, _ = server
    jwt = token(base, AGENT, PASSWORD)
    status, answer = post(base, {"key": f"{D}:W5:wechat", "status": "failed",
                                 "detail": "43004 unfollowed"}, jwt)
    assert status == 201 and answer["fell_back"] == 1
    assert outbox_row(engine, f"{D}:W5:wechat").status == "permanent_failure"
    assert outbox_row(engine, f"{D}:W5:sms").status == "queued"   # goes out with the next dispatch


def test_an_opt_out_reply_stops_the_channel_until_the_customer_opts_in_again(server):
    base, engine, tmp = server
    body = {"channel": "sms", "address": "13900000004", "reply": "td"}
    status, answer = post(base, body, headers=signed(body))
    assert status == 201 and answer["opted_out"] and answer["accounts"] == 1
    assert post(base, body, headers=signed(body))[0] == 200     # the same reply again: nothing new
    jwt = token(base, AGENT, PASSWORD)
    status, answer = post(base, {"channel": "sms", "address": "+8613900000003", "reply": "好的"}, jwt)
    assert status == 201 and not answer["opted_out"]           # a reply, not an opt-out
    with engine.connect() as conn:
        entries = [e for e in trail.entries(conn, kind="receipt") if e.payload["event"] == "reply"]
    assert [(e.account_id, e.payload["opt_out"], e.payload["reply"]) for e in entries][0] == ("W4", True, "td")
    assert "好的" not in json.dumps([e.payload for e in entries], ensure_ascii=False)

    def holds(day):
        with engine.connect() as conn:
            return conn.execute(text("SELECT holds, reasons FROM decisions WHERE cycle_date = :d"
                                     " AND account_id = 'W4'"), {"d": day}).one()

    # The next extracts (from the day the reply came) do not list it: the opt-out stands.
    with engine.connect() as conn:
        received = conn.execute(text("SELECT opted_out_on FROM channel_opt_outs")).scalar_one()
    d1, d2, d3 = (date.fromisoformat(str(received)) + timedelta(days=n) for n in (0, 1, 2))
    cycle(engine, tmp, d1)
    assert "opt_out_sms" in holds(d1).holds and "sms:opted_out" in holds(d1).reasons
    # The billing system records it (D+2) and later the customer opts in again (D+3).
    listed = [row[:8] + ["wechat;sms"] + row[9:] if row[0] == "W4" else row for row in ACCOUNTS]
    cycle(engine, tmp, d2, listed)
    assert "opt_out_sms" in holds(d2).holds
    cycle(engine, tmp, d3)
    assert "opt_out_sms" not in holds(d3).holds and "opt_out_wechat" in holds(d3).holds
