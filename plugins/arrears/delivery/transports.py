"""Where messages go: SMTP (connection ``arrears_smtp``, via ``emails``) or ``.eml`` files, and
HTTP gateways (``arrears_sms``, ``arrears_wechat``, ...) or a ``.jsonl`` file per channel
(CONTRACT §4, §7). The channel folders under arrears/channels/ choose and configure these.

Each transport opens one session per chunk of messages (one SMTP connection reused for the chunk)
and sends one message at a time, answering what the far end said or raising one of:
``PermanentFailure`` (do not retry: bad address, 5xx), ``TransientFailure`` (retry later) or
``Outage`` (the far end is unreachable: stop the batch, retry later).
"""
from __future__ import annotations

import hashlib
import json
import smtplib
import socket
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from email.policy import Compat32
from email.utils import format_datetime, parseaddr
from functools import lru_cache
from urllib.parse import quote

from arrears.delivery.render import sender


class DeliveryError(Exception):
    pass


class PermanentFailure(DeliveryError):
    """The far end refused this message for good (bad address, policy): never retried."""


class TransientFailure(DeliveryError):
    """This message failed for now (4xx, timeout on this message): retried by the next attempt."""


class Outage(DeliveryError):
    """The server or gateway cannot be reached: the rest of the batch waits for the next attempt."""


@dataclass(frozen=True)
class OutboxMessage:
    idem_key: str
    cycle_date: str
    account_id: str
    channel: str
    address: str
    subject: str
    body_text: str
    body_html: str
    message_id: str
    queued_at: str


def _flag(extra: dict, name: str) -> bool:
    value = extra.get(name, False)
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes")


def _extra(conn) -> dict:
    try:
        return dict(conn.extra_dejson or {})
    except Exception:  # noqa: BLE001 - a malformed extra is a configuration error below
        raise DeliveryError(f"connection {conn.conn_id}: extra is not valid JSON; fix it") from None


def mail_from(conn) -> str:
    return (_extra(conn).get("from_email") if conn is not None else None) or sender()["mail_from"]


def mail_domain(conn) -> str:
    return mail_from(conn).rsplit("@", 1)[-1].strip("> ")


class _FoldedOnce(Compat32):
    """``emails``' own policy (compat32, which it flattens every message with) that folds a
    header it has folded before from memory: MIME-Version, the parts' Content-Type and
    Content-Transfer-Encoding, From and Date are the same in every message of a batch, and
    folding them again was a third of ``as_bytes()``. Same input, same bytes: only the work
    is skipped (tests/test_delivery_templates.py compares with ``emails`` left alone)."""

    def fold_binary(self, name, value):
        if type(value) is not str:  # a Header object: folded as emails would
            return super().fold_binary(name, value)
        return _folded(name, value, self.linesep, self.max_line_length, self.cte_type)


_COMPAT32 = Compat32()


@lru_cache(maxsize=256)  # the recurring headers stay; each message's own ones pass through
def _folded(name: str, value: str, linesep: str, max_line_length, cte_type: str) -> bytes:
    return _COMPAT32.clone(linesep=linesep, max_line_length=max_line_length,
                           cte_type=cte_type).fold_binary(name, value)


FOLDED_ONCE = _FoldedOnce()


@lru_cache(maxsize=64)  # a batch's rows share a few queue times
def _date_header(queued_at: str) -> str:
    queued = datetime.strptime(queued_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return format_datetime(queued)


def build_email(msg: OutboxMessage, from_addr: str):
    """The MIME message, byte-identical for the same outbox row (Date from the queue time,
    boundaries from the key), so a resend after a crash is recognisably the same message."""
    import emails

    seed = hashlib.sha256(msg.idem_key.encode()).hexdigest()[:24]
    # The address as a (name, address) pair: emails takes it as it is instead of parsing it again.
    message = emails.Message(html=msg.body_html or None, text=msg.body_text, subject=msg.subject,
                             mail_from=from_addr, mail_to=(None, msg.address),
                             message_id=msg.message_id, date=_date_header(msg.queued_at),
                             headers={"X-Arrears-Key": msg.idem_key,
                                      # one-click opt-out in mail clients, besides the text's
                                      "List-Unsubscribe": f"<mailto:{parseaddr(from_addr)[1]}?subject="
                                                          f"unsubscribe%20{quote(msg.account_id)}>"})
    message.policy = FOLDED_ONCE

    def deterministic_boundaries(_message, mime) -> None:
        for n, part in enumerate(p for p in mime.walk() if p.is_multipart()):
            part.set_boundary(f"=={seed}.{n}==")
    message.after_build = deterministic_boundaries
    return message


# --- email over SMTP ------------------------------------------------------------------------

def _smtp_code_failure(code: int, what: str) -> DeliveryError:
    return (PermanentFailure if 500 <= code < 600 else TransientFailure)(f"{code} {what}")


# SMTP connections a large batch is sent over at once (README: the outbox). 3 on 2 cores: each
# connection waits on the server's answers, and a third keeps the cores busy meanwhile (quiet,
# 20,000 emails: 557-622 msgs/s against 409-520 over 2).
SMTP_SESSIONS = 3


def _sessions(extra: dict) -> int:
    value = extra.get("sessions", SMTP_SESSIONS)
    whole = isinstance(value, int) and not isinstance(value, bool)
    sessions = int(value) if whole or (isinstance(value, str) and value.strip().isascii()
                                          and value.strip().isdigit()) else 0
    if not 1 <= sessions <= 64:
        raise DeliveryError(f"connection arrears_smtp: extra.sessions must be a whole number "
                            f"from 1 to 64, not {value!r}")
    return sessions


class SmtpTransport:
    """The ``arrears_smtp`` connection, with the SMTP provider's extras: ``from_email``,
    ``disable_ssl`` (default false: SMTPS), ``disable_tls`` (default false: STARTTLS when not
    SMTPS), ``timeout`` (seconds, default 30), ``local_hostname`` (EHLO name), ``sessions``
    (connections a large batch uses at once, one process each, default 3)."""
    name = "smtp"

    def __init__(self, conn):
        extra = _extra(conn)
        ssl = not _flag(extra, "disable_ssl")
        self.sessions = _sessions(extra)
        self.from_addr = mail_from(conn)
        self.options = dict(host=conn.host, port=int(conn.port or (465 if ssl else 25)), ssl=ssl,
                            tls=not ssl and not _flag(extra, "disable_tls"),
                            user=conn.login or None, password=conn.password or None,
                            timeout=int(extra.get("timeout", 30)), fail_silently=False,
                            # not emails' default getfqdn(): a slow DNS lookup per batch
                            local_hostname=extra.get("local_hostname") or socket.gethostname())
        if not conn.host:
            raise DeliveryError("connection arrears_smtp has no host: set it or delete the "
                                "connection to write .eml files instead")

    @contextmanager
    def session(self, cycle_date: str):
        from emails.backend.smtp import SMTPBackend
        backend = SMTPBackend(**self.options)
        try:
            yield lambda msg: self._send(backend, msg)
        finally:
            try:
                backend.close()
            except Exception:  # noqa: BLE001 - every message's outcome is already recorded
                pass

    def _send(self, backend, msg: OutboxMessage) -> str:
        message = build_email(msg, self.from_addr)
        try:
            response = message.send(smtp=backend)  # to: the message's own To, parsed once
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise _smtp_code_failure(code, f"recipient refused: {reply!r}") from None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            raise _smtp_code_failure(exc.smtp_code, f"{type(exc).__name__}: {exc.smtp_error!r}") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise Outage(f"SMTP login refused ({exc.smtp_code}): check the arrears_smtp "
                         f"login and password") from None
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError) as exc:
            raise Outage(f"SMTP server {self.options['host']}:{self.options['port']} "
                         f"unreachable: {exc!r}") from None
        except smtplib.SMTPResponseException as exc:
            raise _smtp_code_failure(exc.smtp_code, repr(exc.smtp_error)) from None
        if response is None or not response.success:
            raise TransientFailure(f"SMTP did not confirm: {response!r}")
        reply = response.status_text.decode(errors="replace") if response.status_text else ""
        return f"{response.status_code} {reply}"[:500]


class EmlFileTransport:
    """The embedded default: ``<outbox>/<D>/mail/<key>.eml``. Writing the same key again writes
    the same bytes, so a resend is harmless."""
    name = "eml"

    def __init__(self, outbox, from_addr: str):
        from arrears.outbox_files import as_storage_path  # imports Airflow: not in SMTP sessions
        self.outbox, self.from_addr = as_storage_path(outbox), from_addr

    @contextmanager
    def session(self, cycle_date: str):
        from arrears.outbox_files import day_folder
        folder = day_folder(self.outbox, date.fromisoformat(cycle_date)) / "mail"
        yield lambda msg: self._send(folder, msg)

    def _send(self, folder, msg: OutboxMessage) -> str:
        name = msg.idem_key.replace(":", "_") + ".eml"
        from arrears.outbox_files import write_file
        path = write_file(folder / name, build_email(msg, self.from_addr).as_bytes())
        return f"file {path.name}"


# --- HTTP gateways (SMS, WeChat, push, voice) ----------------------------------------------

def gateway_url(conn) -> str:
    """``extra.url`` if given, else the connection URI's parts: ``http(s)://host:port/path``
    (Airflow keeps the URI's path in ``schema``)."""
    extra = _extra(conn)
    if extra.get("url"):
        return str(extra["url"])
    if not conn.host:
        raise DeliveryError(f"connection {conn.conn_id} has no host or extra.url: set one, or "
                            f"delete the connection to write the channel's file instead")
    scheme = "https" if (conn.conn_type or "").lower() == "https" else "http"
    port = f":{conn.port}" if conn.port else ""
    return f"{scheme}://{conn.host}{port}/{(conn.schema or '').lstrip('/')}"


sms_gateway_url = gateway_url


def http_status_failure(code: int, answer: str) -> DeliveryError:
    """4xx (but 408/429) is permanent; 5xx, 408 and 429 are retried."""
    if 400 <= code < 500 and code not in (408, 429):
        return PermanentFailure(answer)
    return TransientFailure(answer)


class HttpJsonTransport:
    """One JSON POST per message (``body(msg)``) with an ``Idempotency-Key`` header (the outbox
    key); the gateway answers 2xx with its receipt, and answers a repeated key with the first
    receipt without sending again. The password, if any, is a bearer token. ``check(answer)``
    may raise on a 2xx whose body reports an error (WeChat answers errors with 200)."""
    name = "http_gateway"

    def __init__(self, conn, body, check=None, label: str = "gateway"):
        self.url = gateway_url(conn)
        self.token = conn.password or ""
        self.extra = _extra(conn)
        self.timeout = int(self.extra.get("timeout", 15))
        self._body, self._check, self.label = body, check, label
        self.name = label.lower().replace(" ", "_")

    @contextmanager
    def session(self, cycle_date: str):
        yield self._send

    def _send(self, msg: OutboxMessage) -> str:
        body = json.dumps(self._body(msg), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Idempotency-Key": msg.idem_key}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                answer = f"{reply.status} {reply.read(1000).decode(errors='replace')}"
        except urllib.error.HTTPError as exc:
            raise http_status_failure(exc.code, f"{exc.code} {exc.read(500).decode(errors='replace')}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise Outage(f"{self.label} {self.url} unreachable: {exc!r}") from None
        if self._check is not None:
            self._check(answer)
        return answer


class SmsGatewayTransport(HttpJsonTransport):
    """``arrears_sms``: ``{"to", "text", "client_ref"}`` per message."""
    name = "sms_gateway"

    def __init__(self, conn):
        super().__init__(conn, lambda msg: {"to": msg.address, "text": msg.body_text.strip(),
                                            "client_ref": msg.message_id}, label="SMS gateway")


class JsonlTransport:
    """An embedded default: one JSON line per message in ``<outbox>/<D>/<file_name>``. A key
    already in the file (a crash after the append) is not appended again."""
    name = "jsonl"

    def __init__(self, outbox, file_name: str, line):
        from arrears.outbox_files import as_storage_path
        self.outbox, self.file_name, self._line = as_storage_path(outbox), file_name, line
        self.name = file_name.replace(".", "_")
        self._present: dict[str, set[str]] = {}   # read once per file and dispatch, not per chunk

    def _keys_in(self, path) -> set[str]:
        if str(path) not in self._present:
            present = self._present[str(path)] = set()
            for line in (path.read_text(encoding="utf-8").splitlines() if path.exists() else ()):
                try:
                    present.add(json.loads(line)["idempotency_key"])
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line from a crash: its message is sent again below
        return self._present[str(path)]

    @contextmanager
    def session(self, cycle_date: str):
        from arrears.outbox_files import appending, day_folder
        path = day_folder(self.outbox, date.fromisoformat(cycle_date)) / self.file_name
        present = self._keys_in(path)
        with appending(path) as append:
            def send(msg: OutboxMessage) -> str:
                if msg.idem_key in present:
                    return f"already in {self.file_name}"
                line = json.dumps({"idempotency_key": msg.idem_key, "message_id": msg.message_id,
                                   "account_id": msg.account_id, **self._line(msg)},
                                  ensure_ascii=False)
                append((line + "\n").encode("utf-8"))
                present.add(msg.idem_key)
                return f"appended to {self.file_name}"
            yield send


class SmsJsonlTransport(JsonlTransport):
    """``<outbox>/<D>/sms.jsonl``."""
    name = "sms_jsonl"

    def __init__(self, outbox):
        super().__init__(outbox, "sms.jsonl",
                         lambda msg: {"to": msg.address, "text": msg.body_text.strip()})

