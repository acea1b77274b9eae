"""Hostile receipt and reply bodies (POST /arrears/api/receipts, CONTRACT §7), on both databases:
each is refused with a clear reason, or recorded as an unknown key, and nothing is written."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from arrears.delivery.receipts import ReceiptError, record_receipt

NOW = datetime(2026, 11, 16, 2, 0, tzinfo=timezone.utc)

REFUSED = [
    (None, "must be a JSON object"),
    (["key", "x"], "must be a JSON object"),
    ("delivered", "must be a JSON object"),
    ({}, "neither 'key'"),
    ({"status": "delivered"}, "neither 'key'"),
    ({"key": "", "status": "delivered"}, "'key' is missing or blank"),
    ({"key": "   ", "status": "delivered"}, "'key' is missing or blank"),
    ({"key": "k\x00", "status": "delivered"}, "holds a NUL byte"),
    ({"key": "k" * 257, "status": "delivered"}, "longer than 256"),
    ({"key": "k"}, "'status' is missing or blank"),
    ({"key": "k", "status": "DELIVERED"}, "is not one of delivered, failed, opted_out"),
    ({"key": "k", "status": 1}, "is not one of"),
    ({"key": "k", "status": ["delivered"]}, "is not one of"),
    ({"key": "k", "status": "delivered", "detail": "d" * 1001}, "longer than 1000"),
    ({"key": "k", "status": "delivered", "detail": "bad\x00byte"}, "holds a NUL byte"),
    ({"reply": "TD"}, "'channel' is missing or blank"),
    ({"reply": "TD", "channel": "fax", "address": "1"}, "channel 'fax' is not one of"),
    ({"reply": "TD", "channel": "sms"}, "'address' is missing or blank"),
    ({"reply": "", "channel": "sms", "address": "13900000001"}, "'reply' is missing or blank"),
    ({"reply": "r" * 1001, "channel": "sms", "address": "13900000001"}, "longer than 1000"),
]


def _written(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT COUNT(*) FROM channel_receipts")).scalar_one() + \
            conn.execute(text("SELECT COUNT(*) FROM audit_entries")).scalar_one()


@pytest.mark.parametrize("body, reason", REFUSED)
def test_a_hostile_body_is_refused_with_its_reason_and_writes_nothing(engine, body, reason):
    with pytest.raises(ReceiptError, match=re.escape(reason)):
        record_receipt(engine, body, "gateway", NOW, "Asia/Shanghai")
    assert _written(engine) == 0


def test_an_unknown_key_is_answered_as_such_and_writes_nothing(engine):
    outcome = record_receipt(engine, {"key": "2026-11-16:NOPE:email", "status": "delivered"},
                             "gateway", NOW, "Asia/Shanghai")
    assert outcome.status == "unknown_key" and outcome.accounts == []
    assert _written(engine) == 0


def test_a_gateway_may_not_post_another_channels_reply(engine):
    with pytest.raises(ReceiptError, match="a gateway signing for wechat cannot post sms replies"):
        record_receipt(engine, {"reply": "TD", "channel": "sms", "address": "13900000001"},
                       "hmac:arrears_wechat", NOW, "Asia/Shanghai", channel_of_poster="wechat")
    assert _written(engine) == 0
