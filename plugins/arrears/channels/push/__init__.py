"""App push (CONTRACT §7): one JSON POST per message (``user_id``, ``title``, ``body``,
``client_ref``) to the connection ``arrears_push``, else ``<outbox>/<D>/push.jsonl``. A 4xx
(an unknown or unregistered app user: 404/410) is permanent; 5xx, 408, 429 are retried."""
from __future__ import annotations

from arrears.channels.base import Channel
from arrears.delivery.render import subject_line, text_from
from arrears.ingest.validate import clean_channel_id


def compose(m) -> tuple[str, str, str]:
    return subject_line(m), text_from("push.txt.j2", m), ""


def body(msg) -> dict:
    return {"user_id": msg.address, "title": msg.subject, "body": msg.body_text.strip(),
            "client_ref": msg.message_id}


def gateway(conn):
    from arrears.delivery.transports import HttpJsonTransport
    return HttpJsonTransport(conn, body, label="push gateway")


def file_default(outbox):
    from arrears.delivery.transports import JsonlTransport
    return JsonlTransport(outbox, "push.jsonl", body)


CHANNEL = Channel(
    name="push", address_column="app_user_id", clean_address=clean_channel_id,
    templates=("push.txt.j2",), compose=compose,
    connection_id="arrears_push", gateway=gateway, file_default=file_default,
    reply_opt_out=("STOP", "退订"))
