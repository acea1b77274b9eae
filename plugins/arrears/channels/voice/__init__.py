"""Automated voice call (CONTRACT §7): one JSON POST per call (``to``, ``script``,
``client_ref``) to the connection ``arrears_voice``, else ``<outbox>/<D>/voice.jsonl``. The
script is text-to-speech per kind and language (include/templates/messages/voice/<lang>.j2).
Calls go out only inside the contact window; a 4xx (not a callable number) is permanent."""
from __future__ import annotations

from arrears.channels.base import Channel
from arrears.delivery.render import text_from
from arrears.ingest.validate import clean_mobile


def compose(m) -> tuple[str, str, str]:
    return "", text_from("voice.txt.j2", m), ""


def body(msg) -> dict:
    return {"to": msg.address, "script": msg.body_text.strip(), "client_ref": msg.message_id}


def gateway(conn):
    from arrears.delivery.transports import HttpJsonTransport
    return HttpJsonTransport(conn, body, label="voice gateway")


def file_default(outbox):
    from arrears.delivery.transports import JsonlTransport
    return JsonlTransport(outbox, "voice.jsonl", body)


CHANNEL = Channel(
    name="voice", address_column="mobile", clean_address=clean_mobile,
    templates=("voice.txt.j2", "voice/zh-CN.j2", "voice/en.j2"), compose=compose,
    connection_id="arrears_voice", gateway=gateway, file_default=file_default,
    window_bound=True, reply_opt_out=("9", "STOP", "退订"))
