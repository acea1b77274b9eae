"""``POST /arrears/api/receipts`` (CONTRACT §7): delivery receipts and customers' replies from
the channels' gateways (see arrears.delivery.receipts for what each does).

Authentication, either of:
- an Airflow JWT (``Authorization: Bearer`` or the UI's cookie), for people and Airflow-aware
  callers; the user name is recorded;
- a gateway's signature: ``X-Arrears-Connection: <connection id>`` (``arrears_sms``,
  ``arrears_wechat``, ...) and ``X-Arrears-Signature: sha256=<hex HMAC-SHA256 of the raw body>``
  keyed with that connection's ``extra.receipt_secret``; the gateway may post only for its own
  channel, and ``hmac:<connection id>`` is recorded.
Answers: 201 recorded, 200 the same receipt again (nothing changed), 404 an unknown key,
422 a body that is neither, 401/403 without valid authentication.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from arrears.audit.web import current_user

router = APIRouter()
_STATUS = {"recorded": 201, "duplicate": 200, "unknown_key": 404}


def gateway_channel(connection_id: str, signature: str, raw: bytes) -> str:
    """The channel whose connection signed ``raw``, or HTTPException 401."""
    from arrears.channels.registry import registry
    from arrears.delivery.transports import _extra
    from arrears.settings import get_connection
    channel = next((c.name for c in registry().values() if c.connection_id == connection_id), None)
    conn = get_connection(connection_id) if channel else None
    secret = str(_extra(conn).get("receipt_secret") or "") if conn else ""
    if not secret:
        raise HTTPException(401, f"no receipt_secret configured for connection {connection_id!r}")
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.strip()):
        raise HTTPException(401, "signature does not match the body")
    return channel


@router.post("/receipts")
async def post_receipt(request: Request) -> JSONResponse:
    from arrears.db import connect
    from arrears.delivery.receipts import ReceiptError, record_receipt
    from arrears.settings import Settings
    raw = await request.body()
    connection_id = request.headers.get("x-arrears-connection", "")
    if connection_id:
        channel = gateway_channel(connection_id, request.headers.get("x-arrears-signature", ""), raw)
        poster = f"hmac:{connection_id}"
    else:
        channel, poster = None, (await current_user(request)).get_name()
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return JSONResponse(status_code=422, content={"error": "the body is not JSON"})
    settings = Settings.load()
    try:
        outcome = record_receipt(connect(settings.db_url), body, poster,
                                 datetime.now(timezone.utc), settings.timezone, channel)
    except ReceiptError as exc:
        return JSONResponse(status_code=422, content={"error": str(exc)})
    return JSONResponse(status_code=_STATUS[outcome.status], content={
        "status": outcome.status, "receipt_id": outcome.receipt_id, "channel": outcome.channel,
        "accounts": len(outcome.accounts), "opted_out": outcome.opted_out,
        "fell_back": outcome.fell_back, "recorded_by": poster})
