"""What comes back from the channels (CONTRACT §7): delivery receipts and customers' replies.

A receipt ``{"key", "status": delivered|failed|opted_out, "detail"}`` is recorded once per
idempotency key: the first one wins and a repeat changes nothing. ``delivered`` is stored on the
message; ``failed`` on a message the far end had accepted makes it a permanent failure (it was
not delivered, so no notice rests on it) and puts the next channel of its slot in the queue.
A reply ``{"channel", "address", "reply"}`` is stored as received; an opt-out word (the channel
declares its words: TD, 退订, STOP, ...) or an ``opted_out`` receipt stops that channel for the
accounts at that address from the next message on, whatever later extracts say, until an extract
after it has listed the channel in ``opt_out`` and a later one no longer does (the customer
opted in again through the billing system). Each is recorded in the audit trail.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, text

from arrears.audit import trail
from arrears.channels.registry import registry
from arrears.db.values import as_date, split_list
from arrears.delivery.outbox import utc_stamp

RECEIPT_STATUSES = ("delivered", "failed", "opted_out")


class ReceiptError(ValueError):
    """A body that is neither a receipt nor a reply: the answer says what to send instead."""


@dataclass
class ReceiptOutcome:
    status: str                   # recorded | duplicate | unknown_key
    receipt_id: str
    channel: str = ""
    accounts: list[str] = field(default_factory=list)
    opted_out: bool = False
    fell_back: int = 0


def _text(body: dict, name: str, limit: int = 256, required: bool = True) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True) if value is not None else ""
    value = value.strip()
    if required and not value:
        raise ReceiptError(f"{name!r} is missing or blank")
    if len(value) > limit or "\x00" in value:
        raise ReceiptError(f"{name!r} is longer than {limit} characters or holds a NUL byte")
    return value


def is_opt_out(channel: str, reply: str) -> bool:
    words = {w.casefold() for w in registry()[channel].reply_opt_out}
    return " ".join(reply.split()).casefold().rstrip("。.!！") in words


def record_receipt(engine: Engine, body, posted_by: str, now: datetime, tz: str,
                   channel_of_poster: str | None = None) -> ReceiptOutcome:
    """Record one receipt or reply. ``channel_of_poster``: set when a gateway signed the body
    with its connection's secret; it may then speak only for its own channel."""
    if not isinstance(body, dict):
        raise ReceiptError("the body must be a JSON object: a receipt {key, status, detail} "
                           "or a reply {channel, address, reply}")
    day = now.astimezone(ZoneInfo(tz)).date()
    with engine.begin() as conn:
        if "key" in body:
            return _receipt(conn, body, posted_by, now, day, channel_of_poster)
        if "reply" in body:
            return _reply(conn, body, posted_by, now, day, channel_of_poster)
    raise ReceiptError("the body has neither 'key' (a receipt) nor 'reply' (a reply)")


def _store(conn: Connection, receipt_id: str, kind: str, *, key: str = "", channel: str,
           address: str = "", account_id: str = "", status: str, detail: str, now: datetime,
           day: date, posted_by: str) -> bool:
    return conn.execute(text(
        "INSERT INTO channel_receipts (receipt_id, kind, idem_key, channel, address, account_id,"
        " status, detail, received_at, received_on, posted_by) VALUES (:r, :kind, :k, :c, :a,"
        " :acc, :s, :detail, :at, :on, :by) ON CONFLICT (receipt_id) DO NOTHING"),
        {"r": receipt_id, "kind": kind, "k": key, "c": channel, "a": address, "acc": account_id,
         "s": status, "detail": detail, "at": utc_stamp(now), "on": day, "by": posted_by}
    ).rowcount == 1


def _receipt(conn, body, posted_by, now, day, poster_channel) -> ReceiptOutcome:
    key = _text(body, "key")
    status = _text(body, "status")
    if status not in RECEIPT_STATUSES:
        raise ReceiptError(f"status {status!r} is not one of {', '.join(RECEIPT_STATUSES)}")
    detail = _text(body, "detail", 1000, required=False)
    receipt_id = f"receipt:{key}"
    row = conn.execute(text("SELECT account_id, channel, status FROM outbox WHERE idem_key = :k"),
                       {"k": key}).first()
    if row is None or (poster_channel and row.channel != poster_channel):
        return ReceiptOutcome("unknown_key", receipt_id)
    outcome = ReceiptOutcome("recorded", receipt_id, row.channel, [row.account_id])
    if not _store(conn, receipt_id, "receipt", key=key, channel=row.channel,
                  account_id=row.account_id, status=status, detail=detail, now=now, day=day,
                  posted_by=posted_by):
        outcome.status = "duplicate"
        return outcome
    conn.execute(text("UPDATE outbox SET receipt = :s, receipt_at = :at WHERE idem_key = :k"),
                 {"s": status, "at": utc_stamp(now), "k": key})
    if status == "failed" and row.status == "sent":
        conn.execute(text("UPDATE outbox SET status = 'permanent_failure', last_error = :e"
                          " WHERE idem_key = :k"), {"e": f"receipt: failed: {detail}"[:1000], "k": key})
        outcome.fell_back = conn.execute(text(
            "UPDATE outbox SET status = 'queued', queued_at = :now, last_error = :why"
            " WHERE fallback_of = :k AND status = 'standby'"),
            {"now": utc_stamp(now), "k": key, "why": f"fallback: receipt failed for {key}"}).rowcount
    if status == "opted_out":
        outcome.opted_out = _opt_out(conn, [row.account_id], row.channel, day, receipt_id)
    trail.append(conn, kind="receipt", key=f"receipt/{key}", account_id=row.account_id,
                 payload={"event": "receipt", "idem_key": key, "channel": row.channel,
                          "status": status, "posted_by": posted_by,
                          "opted_out": outcome.opted_out, "fell_back": outcome.fell_back})
    return outcome


def _reply(conn, body, posted_by, now, day, poster_channel) -> ReceiptOutcome:
    channel = _text(body, "channel")
    channels = registry()
    if channel not in channels or (poster_channel and channel != poster_channel):
        raise ReceiptError(f"channel {channel!r} is not one of {', '.join(channels)}"
                           if channel not in channels else
                           f"a gateway signing for {poster_channel} cannot post {channel} replies")
    spec = channels[channel]
    raw_address = _text(body, "address")
    address = spec.clean_address(raw_address) or raw_address
    reply = _text(body, "reply", 1000)
    digest = hashlib.sha256(json.dumps([channel, address, reply, body.get("id", "")],
                                       ensure_ascii=False).encode()).hexdigest()
    receipt_id = f"reply:{digest[:32]}"
    accounts = [a for (a,) in conn.execute(text(
        f"SELECT account_id FROM extract_accounts WHERE {spec.address_column} = :addr AND"
        " cycle_date = (SELECT MAX(cycle_date) FROM extract_accounts) ORDER BY account_id"),
        {"addr": address})]
    outcome = ReceiptOutcome("recorded", receipt_id, channel, accounts)
    if not _store(conn, receipt_id, "reply", channel=channel, address=address,
                  account_id=";".join(accounts), status=reply[:64], detail=reply, now=now,
                  day=day, posted_by=posted_by):
        outcome.status = "duplicate"
        return outcome
    if is_opt_out(channel, reply):
        outcome.opted_out = _opt_out(conn, accounts, channel, day, receipt_id)
    for account in accounts or [""]:
        # No personal data in the trail: the reply's text only when it is an opt-out word.
        trail.append(conn, kind="receipt", key=f"reply/{digest[:32]}/{account}",
                     account_id=account, payload={
                         "event": "reply", "channel": channel, "posted_by": posted_by,
                         "opt_out": outcome.opted_out,
                         "reply": reply if outcome.opted_out else f"sha256:{digest[:16]}"})
    return outcome


def _opt_out(conn: Connection, accounts: list[str], channel: str, day: date, source: str) -> bool:
    """Stop the channel for the accounts from now on: no new message, and the unsent ones go."""
    for account in accounts:
        conn.execute(text(
            "INSERT INTO channel_opt_outs (account_id, channel, opted_out_on, source)"
            " VALUES (:a, :c, :d, :s) ON CONFLICT (account_id, channel, opted_out_on) DO NOTHING"),
            {"a": account, "c": channel, "d": day, "s": source})
        conn.execute(text(
            "UPDATE outbox SET status = 'cancelled', last_error = :why WHERE account_id = :a"
            " AND channel = :c AND status IN ('queued', 'deferred', 'failed', 'standby')"),
            {"a": account, "c": channel, "why": f"opted out by {source}"})
    return bool(accounts)


def settle_opt_outs(conn: Connection, cycle_date: date) -> int:
    """Bring the reply opt-outs up to D's extract: acknowledged once an extract after the
    opt-out lists the channel in ``opt_out``; lifted once a later extract no longer does."""
    changed = 0
    rows = conn.execute(text(
        "SELECT o.account_id, o.channel, o.opted_out_on, o.acknowledged_on, a.opt_out"
        " FROM channel_opt_outs o JOIN extract_accounts a ON a.account_id = o.account_id"
        " AND a.cycle_date = :d WHERE o.lifted_on IS NULL AND o.opted_out_on < :d"),
        {"d": cycle_date}).all()
    for account, channel, opted_on, acknowledged, opt_out in rows:
        listed = channel in split_list(opt_out)
        if acknowledged is None and listed:
            column, when = "acknowledged_on", cycle_date
        elif acknowledged is not None and as_date(acknowledged) < cycle_date and not listed:
            column, when = "lifted_on", cycle_date
        else:
            continue
        changed += conn.execute(text(
            f"UPDATE channel_opt_outs SET {column} = :d WHERE account_id = :a AND channel = :c"
            " AND opted_out_on = :o"), {"d": when, "a": account, "c": channel, "o": opted_on}).rowcount
    return changed


def receipt_counts(conn: Connection, cycle_date: date) -> dict[str, dict[str, int]]:
    """channel -> {delivered, receipts, replies, opt_outs}: receipts for D's messages
    (``delivered``: those saying so), replies received on D and the opt-outs of D."""
    counts: dict[str, dict[str, int]] = {}
    empty = {"delivered": 0, "receipts": 0, "replies": 0, "opt_outs": 0}
    for channel, status, n in conn.execute(text(
            "SELECT o.channel, o.receipt, COUNT(*) FROM outbox o WHERE o.cycle_date = :d"
            " AND o.receipt <> '' GROUP BY o.channel, o.receipt"), {"d": cycle_date}):
        c = counts.setdefault(channel, dict(empty))
        c["receipts"] += n
        c["delivered"] += n if status == "delivered" else 0
    for channel, n in conn.execute(text(
            "SELECT channel, COUNT(*) FROM channel_receipts WHERE kind = 'reply'"
            " AND received_on = :d GROUP BY channel"), {"d": cycle_date}):
        counts.setdefault(channel, dict(empty))["replies"] = n
    for channel, n in conn.execute(text(
            "SELECT channel, COUNT(*) FROM channel_opt_outs WHERE opted_out_on = :d"
            " GROUP BY channel"), {"d": cycle_date}):
        counts.setdefault(channel, dict(empty))["opt_outs"] = n
    return counts
