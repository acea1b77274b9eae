"""WeChat official-account template message (CONTRACT §7): one JSON POST per message to the
connection ``arrears_wechat`` (URL taken like ``arrears_sms``'s) with ``touser`` = the openid,
``template_id`` (the connection's ``extra.template_id``) and ``data`` (the fields of
include/templates/messages/wechat.j2); else ``<outbox>/<D>/wechat.jsonl``.

WeChat answers errors with HTTP 200 and an ``errcode``: the customer unfollowed the account or
refused the template (43004, 43101) or the openid is not valid for it (40003) are permanent; an
invalid template id or credential (40037, 40001, 42001) stops the batch until ops fix the
connection; anything else (-1 busy, 45009 rate limit, ...) is retried.
"""
from __future__ import annotations

import json

from arrears.channels.base import Channel
from arrears.delivery.render import fields_from, subject_line
from arrears.ingest.validate import clean_channel_id

TEMPLATE_ID = "arrears_collection_notice"   # used when the connection names none
PERMANENT = {40003: "openid not valid for this account", 43004: "customer does not follow the account",
             43101: "customer refused template messages"}
CONFIGURATION = {40001: "credential refused", 42001: "access token expired",
                 40037: "template_id not valid"}


def compose(m) -> tuple[str, str, str]:
    data = fields_from("wechat.j2", m)
    return subject_line(m), json.dumps(data, ensure_ascii=False, sort_keys=True), ""


def request_body(template_id: str):
    def body(msg) -> dict:
        fields = json.loads(msg.body_text)
        return {"touser": msg.address, "template_id": template_id,
                "data": {k: {"value": v} for k, v in fields.items()},
                "client_msg_id": msg.idem_key}   # WeChat's own duplicate guard
    return body


def check(answer: str) -> None:
    from arrears.delivery.transports import Outage, PermanentFailure, TransientFailure
    try:
        code = int(json.loads(answer.split(" ", 1)[1]).get("errcode", 0))
    except (ValueError, IndexError, AttributeError):
        raise TransientFailure(f"WeChat answer not understood: {answer[:200]}") from None
    if code == 0:
        return
    if code in PERMANENT:
        raise PermanentFailure(f"errcode {code}: {PERMANENT[code]}")
    if code in CONFIGURATION:
        raise Outage(f"errcode {code}: {CONFIGURATION[code]}: fix the arrears_wechat connection")
    raise TransientFailure(f"errcode {code}: {answer[:200]}")


def gateway(conn):
    from arrears.delivery.transports import HttpJsonTransport, _extra
    template_id = str(_extra(conn).get("template_id") or TEMPLATE_ID)
    return HttpJsonTransport(conn, request_body(template_id), check, label="WeChat API")


def file_default(outbox):
    from arrears.delivery.transports import JsonlTransport
    body = request_body(TEMPLATE_ID)
    return JsonlTransport(outbox, "wechat.jsonl",
                          lambda msg: {k: v for k, v in body(msg).items() if k != "client_msg_id"})


CHANNEL = Channel(
    name="wechat", address_column="wechat_openid", clean_address=clean_channel_id,
    templates=("wechat.j2",), compose=compose,
    connection_id="arrears_wechat", gateway=gateway, file_default=file_default,
    reply_opt_out=("TD", "STOP", "退订", "取消订阅"))
