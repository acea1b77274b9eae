"""Email: SMTP through the connection ``arrears_smtp``, else ``.eml`` files under
``<outbox>/<D>/mail/`` (CONTRACT §4). A 5xx from the server is permanent, a 4xx is retried."""
from __future__ import annotations

from arrears.channels.base import Channel
from arrears.delivery.render import subject_line, text_from, html_from
from arrears.ingest.validate import clean_email


def compose(m) -> tuple[str, str, str]:
    return subject_line(m), text_from("email.txt.j2", m), html_from("email.html.j2", m)


def gateway(conn):
    from arrears.delivery.transports import SmtpTransport
    return SmtpTransport(conn)


def file_default(outbox):
    from arrears.delivery.transports import EmlFileTransport, mail_from
    return EmlFileTransport(outbox, mail_from(None))


CHANNEL = Channel(
    name="email", address_column="email", clean_address=clean_email,
    templates=("email.txt.j2", "email.html.j2"), compose=compose,
    connection_id="arrears_smtp", gateway=gateway, file_default=file_default,
    reply_opt_out=("UNSUBSCRIBE", "STOP", "退订"))
