"""Row validation for the billing extract: each function returns a clean row or raises RowError.

CONTRACT §1 "What counts as a bad row, precisely" has one definition per rule here (amounts in
``arrears.money.parse_fen``): a compiled pattern or a C-level check applied to every field of its
kind in every file, so the rule and its reason cannot drift between files. Pure functions: the
file layer (read.py) and the loader (load.py) do the I/O.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from arrears.model import (CALL_OUTCOMES, CHANNELS, CUSTOMER_CLASSES, EVENT_TYPES, LANGUAGES,
                           PROTECTIONS, SERVED_NOTICES)
from arrears.money import AmountError, parse_fen, quoted


class RowError(ValueError):
    """Why a row goes to quarantine."""


REQUIRED_COLUMNS = {
    "accounts.csv": ("account_id", "holder_name", "customer_class"),
    "open_items.csv": ("bill_id", "account_id", "bill_period", "amount_due", "due_date"),
    "payments.csv": ("payment_id", "account_id", "amount", "paid_at"),
    "case_events.csv": ("event_id", "account_id", "event_type", "effective_date"),
}
OPTIONAL_FILES = frozenset({"payments.csv", "case_events.csv"})
KEY_COLUMN = {"accounts.csv": "account_id", "open_items.csv": "bill_id",
              "payments.csv": "payment_id", "case_events.csv": "event_id"}

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_CN_MOBILE = re.compile(r"^(?:\+?86)?(1[3-9]\d{9})$")
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
_CHANNEL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # WeChat openids (28 chars), app user ids
_PERIOD = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_SPACES = re.compile(r"[\s-]")
# Exactly YYYY-MM-DD (no week dates, no ordinal dates, no time): fromisoformat takes all of those.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# paid_at: a date, a time to the minute or finer, and a UTC offset (Z or ±HH:MM).
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
                        r"(Z|[+-][0-9]{2}:[0-9]{2})")

# Field limits: an identifier up to 64 characters, any other field up to 4,096.
IDENTIFIERS = frozenset({"account_id", "bill_id", "payment_id", "event_id"})
ID_MAX, TEXT_MAX = 64, 4096


def check_fields(header: list[str], fields: list[str]) -> None:
    """The rules every field of every file obeys: no more fields than the header, no NUL, no
    identifier over ID_MAX and no field over TEXT_MAX characters. The common row (short
    fields, no NUL) costs one join and one max() in C."""
    if len(fields) > len(header):
        raise RowError(f"the row has {len(fields)} fields, the header {len(header)} (an unquoted "
                       f"comma in a value? quote the value)")
    if "\x00" in "".join(fields):
        column = next(h for h, f in zip(header, fields) if "\x00" in f)
        raise RowError(f"{column} contains a NUL byte")
    if max(map(len, fields), default=0) > ID_MAX:
        for column, value in zip(header, fields):
            limit = ID_MAX if column in IDENTIFIERS else TEXT_MAX
            if len(value) > limit:
                raise RowError(f"{column} has {len(value)} characters, more than {limit}")


def required(row: dict, column: str) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise RowError(f"{column} is blank")
    return value


def parse_date(row: dict, column: str, *, optional: bool = False) -> date | None:
    value = (row.get(column) or "").strip()
    if not value:
        if optional:
            return None
        raise RowError(f"{column} is blank")
    if _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise RowError(f"{column} {quoted(value)} is not a date YYYY-MM-DD")


def parse_timestamp(row: dict, column: str) -> datetime:
    value = required(row, column)
    if not _TIMESTAMP.fullmatch(value):
        raise RowError(f"{column} {quoted(value)} is not YYYY-MM-DDTHH:MM[:SS] with a UTC offset "
                       f"(Z or +08:00)")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RowError(f"{column} {quoted(value)} is not a valid time") from None


def positive_fen(row: dict, column: str) -> int:
    try:
        fen = parse_fen(row.get(column) or "")
    except AmountError as exc:
        raise RowError(f"{column} {exc}") from None
    if fen <= 0:
        raise RowError(f"{column} {quoted(row.get(column).strip())} is not positive")
    return fen


def enum(row: dict, column: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    value = (row.get(column) or "").strip()
    if not value and default is not None:
        return default
    if value not in allowed:
        raise RowError(f"{column} {quoted(value)} is not one of {', '.join(allowed)}")
    return value


def enum_list(row: dict, column: str, allowed: tuple[str, ...]) -> str:
    value = row.get(column)
    if not value:  # the common case, kept cheap for million-row extracts
        return ""
    items = [i.strip() for i in value.split(";") if i.strip()]
    bad = [i for i in items if i not in allowed]
    if bad:
        raise RowError(f"{column} has {', '.join(map(quoted, bad))}, not one of {', '.join(allowed)}")
    return ";".join(sorted(set(items)))


def clean_email(text: str) -> str:
    """A valid address, or '' (an invalid address is a contact gap, not an error)."""
    text = (text or "").strip()
    return text if len(text) <= 254 and _EMAIL.match(text) else ""


def clean_mobile(text: str) -> str:
    """E.164 ('+8613912345678') from a CN 11-digit or E.164 number, or '' when invalid."""
    text = _SPACES.sub("", text or "")
    if m := _CN_MOBILE.match(text):
        return "+86" + m.group(1)
    return text if _E164.match(text) else ""


def clean_channel_id(text: str) -> str:
    """A WeChat openid or app user id ([A-Za-z0-9_-], 1-64 characters), or '' (a contact gap)."""
    text = (text or "").strip()
    return text if _CHANNEL_ID.match(text) else ""


def account_row(row: dict) -> dict:
    return {
        "account_id": required(row, "account_id"),
        "holder_name": required(row, "holder_name"),
        "customer_class": enum(row, "customer_class", CUSTOMER_CLASSES),
        "service_address": (row.get("service_address") or "").strip(),
        "email": clean_email(row.get("email", "")),
        "mobile": clean_mobile(row.get("mobile", "")),
        "language": enum(row, "language", LANGUAGES, default="zh-CN"),
        "protections": enum_list(row, "protections", PROTECTIONS),
        "opt_out": enum_list(row, "opt_out", CHANNELS),
        "wechat_openid": clean_channel_id(row.get("wechat_openid", "")),
        "app_user_id": clean_channel_id(row.get("app_user_id", "")),
    }


def bill_row(row: dict, accounts: set[str]) -> dict:
    account_id = required(row, "account_id")
    if account_id not in accounts:
        raise RowError(f"account_id {quoted(account_id)} is not in accounts.csv")
    period = required(row, "bill_period")
    if not _PERIOD.fullmatch(period):
        raise RowError(f"bill_period {quoted(period)} is not YYYY-MM")
    return {"bill_id": required(row, "bill_id"), "account_id": account_id, "bill_period": period,
            "amount_fen": positive_fen(row, "amount_due"), "due_date": parse_date(row, "due_date")}


def payment_row(row: dict, accounts: set[str], bills: dict[str, str], cycle_date: date,
                tz: ZoneInfo) -> dict:
    account_id = required(row, "account_id")
    if account_id not in accounts:
        raise RowError(f"account_id {quoted(account_id)} is not in accounts.csv")
    bill_id = (row.get("bill_id") or "").strip()
    if bill_id and bills.get(bill_id) != account_id:
        raise RowError(f"bill_id {quoted(bill_id)} is not an open item of account {quoted(account_id)}")
    paid_at_text = required(row, "paid_at")
    try:
        paid_on = parse_timestamp(row, "paid_at").astimezone(tz).date()
    except OverflowError:  # year 1 or 9999 moved across midnight by the offset
        raise RowError(f"paid_at {quoted(paid_at_text)} is not a valid time") from None
    if paid_on >= cycle_date:
        raise RowError(f"paid_at {quoted(paid_at_text)} is not on {cycle_date} - 1 or earlier")
    return {"payment_id": required(row, "payment_id"), "account_id": account_id,
            "bill_id": bill_id, "amount_fen": positive_fen(row, "amount"),
            "paid_at": paid_at_text, "paid_on": paid_on}


def instalment_list(row: dict, column: str = "instalments") -> tuple[tuple[date, int], ...]:
    """``"2026-12-10:100.00;2027-01-10:100.00"`` -> ((date, fen), ...) in due-date order."""
    value = (row.get(column) or "").strip()
    if not value:
        return ()
    plan: dict[date, int] = {}
    for item in (i.strip() for i in value.split(";")):
        day, sep, amount = item.partition(":")
        if not sep:
            raise RowError(f"{column} item {quoted(item)} is not YYYY-MM-DD:amount")
        due = parse_date({column: day}, column)
        if due in plan:
            raise RowError(f"{column} has {due} twice")
        plan[due] = positive_fen({column: amount}, column)
    return tuple(sorted(plan.items()))


def format_instalments(plan) -> str:
    """The stored, normalised form of a schedule (what two sightings of an event compare)."""
    from arrears.money import format_fen
    return ";".join(f"{due.isoformat()}:{format_fen(fen)}" for due, fen in plan)


def parse_instalments(text: str) -> tuple[tuple[date, int], ...]:
    """The stored form back to (due date, fen) pairs (already validated when it was stored)."""
    return instalment_list({"instalments": text}) if text else ()


def event_row(row: dict, accounts: set[str]) -> dict:
    account_id = required(row, "account_id")
    if account_id not in accounts:
        raise RowError(f"account_id {quoted(account_id)} is not in accounts.csv")
    event_type = enum(row, "event_type", EVENT_TYPES)
    until = parse_date(row, "until_date", optional=True)
    plan = instalment_list(row)
    if plan and event_type != "payment_plan":
        raise RowError(f"instalments are only for a payment_plan, not {event_type}")
    if plan and until is None:
        until = plan[-1][0]  # a schedule without an end date ends with its last instalment
    if plan and plan[-1][0] > until:
        raise RowError(f"instalment due {plan[-1][0]} is after until_date {until}")
    if event_type in ("promise_to_pay", "payment_plan") and until is None:
        raise RowError(f"{event_type} needs an until_date")
    amount = positive_fen(row, "amount") if (row.get("amount") or "").strip() else None
    if event_type == "promise_to_pay" and amount is None:
        raise RowError("promise_to_pay needs an amount")
    note = (row.get("note") or "").strip()
    if event_type == "notice_served" and note not in SERVED_NOTICES:
        raise RowError(f"notice_served needs note {' or '.join(SERVED_NOTICES)}, not {quoted(note)}")
    if event_type == "call_outcome" and note.partition(":")[0].strip() not in CALL_OUTCOMES:
        raise RowError(f"call_outcome needs note {' | '.join(CALL_OUTCOMES)} "
                       f"(free text after a colon), not {quoted(note)}")
    return {"event_id": required(row, "event_id"), "account_id": account_id,
            "event_type": event_type, "effective_date": parse_date(row, "effective_date"),
            "amount_fen": amount, "until_date": until, "note": note,
            "instalments": format_instalments(plan)}
