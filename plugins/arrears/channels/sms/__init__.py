"""SMS: one JSON POST per message to the HTTP gateway of the connection ``arrears_sms``, else
``<outbox>/<D>/sms.jsonl`` (CONTRACT §4). A 4xx (but 408/429) is permanent; 5xx, 408, 429 and
timeouts are retried."""
from __future__ import annotations

from arrears.channels.base import Channel
from arrears.delivery.render import text_from
from arrears.ingest.validate import clean_mobile


def compose(m) -> tuple[str, str, str]:
    return "", text_from("sms.txt.j2", m), ""


def gateway(conn):
    from arrears.delivery.transports import SmsGatewayTransport
    return SmsGatewayTransport(conn)


def file_default(outbox):
    from arrears.delivery.transports import SmsJsonlTransport
    return SmsJsonlTransport(outbox)


CHANNEL = Channel(
    name="sms", address_column="mobile", clean_address=clean_mobile,
    templates=("sms.txt.j2",), compose=compose,
    connection_id="arrears_sms", gateway=gateway, file_default=file_default,
    reply_opt_out=("TD", "T", "STOP", "退订", "UNSUBSCRIBE"))
