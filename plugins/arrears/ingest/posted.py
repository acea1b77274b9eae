"""Case events posted by people (CONTRACT §8): one event at a time, through the same validators
and the same "first sighting wins" rule as the extract's ``case_events.csv``.

An event posted on calendar day T (utility time zone) is known from cycle date T+1, the cycle
whose extract would carry what happened on T: a re-run of T's cycle still sees what T's cycle saw.
Rejected events go to the quarantine of that cycle date (file ``api:case-events``) with their
reason, so the cycle report counts them with the extract's. Who posted what goes to the audit
trail; the note (free text that may name people) does not.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from arrears.audit import trail
from arrears.ingest import validate as v

log = logging.getLogger(__name__)
QUARANTINE_FILE = "api:case-events"
_FIELDS = ("event_id", "account_id", "event_type", "effective_date", "amount", "until_date", "note")
_COMPARE = ("event_id", "account_id", "event_type", "effective_date", "amount_fen", "until_date",
            "note", "instalments")


@dataclass(frozen=True)
class Posted:
    """What became of one posted event: ``recorded``, ``duplicate`` or ``quarantined``."""
    status: str
    event_id: str
    known_from: date
    reason: str = ""


def as_row(body: dict) -> dict:
    """The posted JSON as an extract row (text fields), or RowError for a shape no CSV can have."""
    if not isinstance(body, dict):
        raise v.RowError("the body must be a JSON object")
    row: dict[str, str] = {}
    for name in _FIELDS:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise v.RowError(f"{name} must be text")
        row[name] = str(value)
    plan = body.get("instalments")
    if plan:
        if not isinstance(plan, list) or not all(isinstance(i, dict) for i in plan):
            raise v.RowError("instalments must be a list of {due_date, amount}")
        items = []
        for item in plan:
            due, amount = item.get("due_date"), item.get("amount")
            if not isinstance(due, str) or isinstance(amount, bool) \
                    or not isinstance(amount, (str, int, float)):
                raise v.RowError("each instalment needs due_date (YYYY-MM-DD) and amount")
            if ":" in due or ";" in due or ";" in str(amount):
                raise v.RowError(f"instalment {item!r} is not a date and an amount")
            items.append(f"{due}:{amount}")
        row["instalments"] = ";".join(items)
    return row


def known_from(now: datetime, tz: str) -> date:
    return now.astimezone(ZoneInfo(tz)).date() + timedelta(days=1)


def _accounts(conn: Connection, account_id: str) -> set[str]:
    """The account, when the latest extract has it (an event for no known account is bad input)."""
    found = conn.execute(text(
        "SELECT 1 FROM extract_accounts WHERE account_id = :a AND cycle_date ="
        " (SELECT MAX(cycle_date) FROM extract_accounts)"), {"a": account_id}).first()
    return {account_id} if found else set()


def _norm(value) -> str:
    return "" if value is None else str(value)[:10] if isinstance(value, (date, datetime)) \
        else str(value)


def post_event(engine: Engine, body: dict, user: str, now: datetime,
               tz: str = "Asia/Shanghai") -> Posted:
    """Validate and record one event posted by ``user``; idempotent on ``event_id``."""
    for attempt in (1, 2):  # a concurrent post of the same event_id: the second look sees it
        try:
            return _post(engine, body, user, now, tz)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _post(engine: Engine, body: dict, user: str, now: datetime, tz: str) -> Posted:
    day = known_from(now, tz)
    raw = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)[:4096]
    with engine.begin() as conn:
        try:
            row = as_row(body)
            v.check_fields(list(row), list(row.values()))  # NUL, lengths: as in the extract
            record = v.event_row(row, _accounts(conn, (row.get("account_id") or "").strip()))
            old = conn.execute(text(
                f"SELECT {', '.join(_COMPARE)} FROM case_events WHERE event_id = :e"),
                {"e": record["event_id"]}).mappings().first()
            if old is not None and any(_norm(old[c]) != _norm(record[c]) for c in _COMPARE):
                raise v.RowError(f"event_id {record['event_id']!r} was recorded before with "
                                 f"other content (the first sighting wins)")
        except v.RowError as exc:
            return _quarantine(conn, body, raw, str(exc), user, day)
        if old is not None:
            return Posted("duplicate", record["event_id"], day)
        conn.execute(text(
            "INSERT INTO case_events (event_id, account_id, event_type, effective_date, amount_fen,"
            " until_date, note, instalments, first_seen, source, recorded_by) VALUES (:event_id,"
            " :account_id, :event_type, :effective_date, :amount_fen, :until_date, :note,"
            " :instalments, :first_seen, 'api', :user)"), {**record, "first_seen": day, "user": user})
        trail.append(conn, kind="case_event", key=f"case_event/{record['event_id']}",
                     account_id=record["account_id"], cycle_date=day, task_id="api",
                     payload={"event_type": record["event_type"],
                              "effective_date": record["effective_date"],
                              "amount_fen": record["amount_fen"], "until_date": record["until_date"],
                              "instalments": record["instalments"], "source": "api",
                              "recorded_by": user, "known_from": day})
    log.info("case event %s (%s) recorded by %s", record["event_id"], record["event_type"], user)
    return Posted("recorded", record["event_id"], day)


def _quarantine(conn: Connection, body: dict, raw: str, reason: str, user: str, day: date) -> Posted:
    line = conn.execute(text(
        "SELECT COALESCE(MAX(line), 0) + 1 FROM quarantine WHERE cycle_date = :d AND file = :f"),
        {"d": day, "f": QUARANTINE_FILE}).scalar_one()
    conn.execute(text("INSERT INTO quarantine (cycle_date, file, line, reason, raw)"
                      " VALUES (:d, :f, :l, :r, :raw)"),
                 {"d": day, "f": QUARANTINE_FILE, "l": line, "r": reason, "raw": raw})
    event_id = str(body.get("event_id") or "")[:64] if isinstance(body, dict) else ""
    account_id = str(body.get("account_id") or "")[:64] if isinstance(body, dict) else ""
    trail.append(conn, kind="quarantine", key=f"quarantine/{day}/{QUARANTINE_FILE}/{line}",
                 account_id=account_id, cycle_date=day, task_id="api",
                 payload={"file": QUARANTINE_FILE, "line": line, "reason": reason,
                          "event_id": event_id, "recorded_by": user})
    log.warning("case event %r quarantined (%s), posted by %s", event_id, reason, user)
    return Posted("quarantined", event_id, day, reason)
