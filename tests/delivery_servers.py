"""Real servers for the delivery tests: an SMTP server (aiosmtpd) and an HTTP SMS gateway
(http.server), both on 127.0.0.1, recording what arrives and able to fail on request."""
from __future__ import annotations

import email
import json
import socket
import threading
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil
from aiosmtpd.controller import Controller


def client_pid(peer) -> int | None:
    """The process on this machine holding the client end of an SMTP session."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.pid and conn.laddr and (conn.laddr.ip, conn.laddr.port) == tuple(peer[:2]):
            return conn.pid
    return None


class SmtpRecorder:
    """aiosmtpd handler: RCPT to a ``bounce@`` address gets 550; while ``fail_after`` is set,
    every DATA after that many accepted messages gets 451 (a temporary failure). With
    ``track_senders``, ``senders`` holds the client process of each message that arrived."""

    def __init__(self, track_senders: bool = False):
        self.messages: list[email.message.EmailMessage] = []
        self.raw: list[bytes] = []   # each accepted message as it came over the wire
        self.senders: list[int | None] = []
        self.track_senders = track_senders
        self.fail_after: int | None = None
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bounce@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.track_senders:
                self.senders.append(client_pid(session.peer))
            if self.fail_after is not None and len(self.messages) >= self.fail_after:
                return "451 4.3.0 mailbox busy, try again later"
            self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
            self.raw.append(envelope.content)
        return "250 2.0.0 queued"

    def message_ids(self) -> list[str]:
        return [m["Message-ID"] for m in self.messages]


def start_smtp(recorder: SmtpRecorder | None = None, port: int = 0) -> tuple[Controller, SmtpRecorder]:
    """Start (or, with the recorder and port of a stopped one, restart) the SMTP server."""
    recorder = recorder or SmtpRecorder()
    if not port:
        with socket.socket() as probe:  # aiosmtpd needs a real port number up front
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, recorder


def reply_json(handler: BaseHTTPRequestHandler, code: int, answer: str) -> None:
    data = answer.encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class _LocalHttpServer:
    """A threaded HTTP server on a free port of 127.0.0.1, stopped by ``stop()``."""

    def _serve(self, handler) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class SmsGateway(_LocalHttpServer):
    """The gateway contract of arrears.delivery.transports.SmsGatewayTransport: a repeated
    Idempotency-Key gets the first receipt and sends nothing. ``+86139000000 99`` is not a valid
    number (400); while ``fail_after`` is set, requests beyond that many sends get 503."""

    def __init__(self):
        self.sent: list[dict] = []          # what reached a phone
        self.requests: list[dict] = []      # every POST, duplicates included
        self.receipts: dict[str, str] = {}
        self.fail_after: int | None = None
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers.get("Idempotency-Key", "")
                with gateway.lock:
                    gateway.requests.append({"key": key, "auth": self.headers.get("Authorization"),
                                             "path": self.path, **body})
                    if key in gateway.receipts:
                        code, answer = 200, gateway.receipts[key]
                    elif body["to"].endswith("99"):
                        code, answer = 400, json.dumps({"error": "invalid number"})
                    elif gateway.fail_after is not None and len(gateway.sent) >= gateway.fail_after:
                        code, answer = 503, json.dumps({"error": "busy"})
                    else:
                        gateway.sent.append(body)
                        answer = json.dumps({"id": f"gw-{len(gateway.sent)}", "status": "accepted"})
                        gateway.receipts[key] = answer
                        code = 200
                reply_json(self, code, answer)

        self._serve(Handler)


class ChannelGateway(_LocalHttpServer):
    """An HTTP gateway for the further channels (CONTRACT §7): WeChat's template-message API
    (``wechat=True``: errors answered 200 with an ``errcode``, a repeated ``client_msg_id`` sends
    nothing), app push and voice (a repeated Idempotency-Key gets the first receipt). The
    addresses in ``refused`` are refused for good (WeChat 43004 "not a follower", others 404);
    while ``fail_after`` is set, requests beyond that many sends are refused for now."""

    def __init__(self, address_field: str, wechat: bool = False, refused=()):
        self.sent: list[dict] = []
        self.requests: list[dict] = []
        self.receipts: dict[str, tuple[int, str]] = {}
        self.refused, self.fail_after = set(refused), None
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = body.get("client_msg_id") or self.headers.get("Idempotency-Key", "")
                with gateway.lock:
                    gateway.requests.append({"key": key, "auth": self.headers.get("Authorization"),
                                             "path": self.path, **body})
                    if key in gateway.receipts:
                        code, answer = gateway.receipts[key]
                    elif body[address_field] in gateway.refused:
                        code, answer = (200, json.dumps({"errcode": 43004, "errmsg": "require subscribe"})) \
                            if wechat else (404, json.dumps({"error": "unknown user"}))
                    elif gateway.fail_after is not None and len(gateway.sent) >= gateway.fail_after:
                        code, answer = (200, json.dumps({"errcode": -1, "errmsg": "system busy"})) \
                            if wechat else (503, json.dumps({"error": "busy"}))
                    else:
                        gateway.sent.append(body)
                        code, answer = 200, json.dumps(
                            {"errcode": 0, "errmsg": "ok", "msgid": len(gateway.sent)} if wechat
                            else {"id": f"gw-{len(gateway.sent)}", "status": "accepted"})
                        gateway.receipts[key] = (code, answer)
                reply_json(self, code, answer)

        self._serve(Handler)
