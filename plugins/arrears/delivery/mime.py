"""An email's bytes, written directly: a ``multipart/alternative`` of the plain text and the
HTML, both UTF-8 in base64, every header in ASCII (RFC 2047 encoded-words where needed).

Why not ``email.generator`` (or the ``emails`` package on top of it): its header folding and
policy machinery cost about 2 ms a message, more than rendering and sending it together, and the
message here has one fixed shape. The result is byte-identical for the same outbox row (Date
from the queue time, the boundary from the key), so a resend after a crash is recognisably the
same message; tests parse it back with the standard library's parser.
"""
from __future__ import annotations

import hashlib
from base64 import b64encode
from email.utils import formataddr, parseaddr
from functools import lru_cache

CRLF = "\r\n"
_ENCODED_BYTES = 36        # bytes per encoded-word: 48 base64 characters, so a header line stays <= 76 (RFC 2047)
_PLAIN_MAX = 900           # a longer ASCII value is encoded too (RFC 5322: a line is at most 998)


def header_value(value: str) -> str:
    """``value`` as it may stand in a header: itself when it is printable ASCII (no CR, LF or
    other control character, so a hostile value cannot start a header of its own), else
    UTF-8 encoded-words folded one per line."""
    if value.isascii() and value.isprintable() and len(value) <= _PLAIN_MAX:
        return value
    data, words, start = value.encode(), [], 0
    while start < len(data):
        end = min(start + _ENCODED_BYTES, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # never split a character
            end -= 1
        words.append(f"=?utf-8?b?{b64encode(data[start:end]).decode()}?=")
        start = end
    return (CRLF + " ").join(words)


def base64_lines(text: str) -> str:
    """UTF-8 ``text`` in base64, lines of 76 characters ending CRLF (RFC 2045)."""
    encoded = b64encode(text.encode()).decode()
    return "".join(encoded[i:i + 76] + CRLF for i in range(0, len(encoded), 76))


@lru_cache(maxsize=64)
def address_header(address: str) -> str:
    """``Name <addr>`` or ``addr``, the display name encoded when it is not ASCII."""
    if "<" not in address and '"' not in address:
        return header_value(address.strip())
    name, addr = parseaddr(address)
    return header_value(formataddr((name, addr), charset="utf-8") if name else addr)


def _part(subtype: str, body: str, boundary: str) -> str:
    return (f"--{boundary}{CRLF}Content-Type: text/{subtype}; charset=\"utf-8\"{CRLF}"
            f"Content-Transfer-Encoding: base64{CRLF}{CRLF}{base64_lines(body)}")


def email_bytes(*, mail_from: str, mail_to: str, subject: str, date: str, message_id: str,
                text: str, html: str, seed: str, headers: dict[str, str]) -> bytes:
    """The whole message, CRLF line ends. ``seed`` makes the boundary (the same for the same
    message); ``headers`` are extra headers (name: value), written after the standard ones."""
    boundary = f"=={hashlib.sha256(seed.encode()).hexdigest()[:24]}.0=="
    lines = [f"From: {address_header(mail_from)}", f"To: {header_value(mail_to)}",
             f"Subject: {header_value(subject)}", f"Date: {date}",
             f"Message-ID: {header_value(message_id)}", "MIME-Version: 1.0",
             *(f"{name}: {header_value(value)}" for name, value in headers.items())]
    parts = [_part("plain", text, boundary)]
    if html:
        parts.append(_part("html", html, boundary))
        lines.append(f"Content-Type: multipart/alternative; boundary=\"{boundary}\"")
        body = "".join(parts) + f"--{boundary}--{CRLF}"
    else:  # the plain text alone: no multipart needed
        lines += ["Content-Type: text/plain; charset=\"utf-8\"", "Content-Transfer-Encoding: base64"]
        body = base64_lines(text)
    return (CRLF.join(lines) + CRLF + CRLF + body).encode("ascii")
