"""Served means delivered (CONTRACT §2).

A credit pre-notice or a disconnection notice is served when a message carrying it was accepted
by the far end (outbox status ``sent``, whatever the transport, the embedded file transports
included) or when staff record service in person (case event ``notice_served``, ``note`` = the
notice). ``record_service`` turns what happened into ``notice_service`` rows, opens the
disconnection notice a service makes, and records a permanent delivery failure as a contact gap
for that channel and address. It is idempotent (every row is keyed by its source) and runs after
every dispatch (the cycle's and the hourly sweep's) and before every real cycle decides.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, text

from arrears.db.values import as_date, split_list
from arrears.db import sql
from arrears.model import SERVED_NOTICES
from arrears.policy.business_days import BusinessCalendar
from arrears.policy.config import Policy
from arrears.outbox_files import as_storage_path, day_folder, write_file
from arrears.spreadsheet import csv_bytes

log = logging.getLogger(__name__)

NOTICE_COLUMNS = ("account_id", "notice_id", "served_on", "earliest_disconnection")

_SERVICE = text(
    "INSERT INTO notice_service (source, notice, account_id, served_on, known_on, decided_on)"
    " VALUES (:source, :notice, :account_id, :served_on, :known_on, :decided_on)"
    " ON CONFLICT (source, notice) DO NOTHING")
_GAP = text(
    "INSERT INTO contact_gaps (account_id, channel, address, since_date, reason, source)"
    " VALUES (:account_id, :channel, :address, :since, :reason, :source)"
    " ON CONFLICT (account_id, channel, address) DO NOTHING")
_OPEN_NOTICE = text(
    "SELECT COUNT(*) FROM disconnection_notices WHERE account_id = :a AND closed_on IS NULL")
_NOTICE = text(
    "INSERT INTO disconnection_notices (notice_id, account_id, served_on, earliest_disconnection,"
    " source) VALUES (:n, :a, :s, :e, :source) ON CONFLICT (notice_id) DO NOTHING")
_LOG = text(
    "INSERT INTO disconnection_log (event_id, event, cycle_date, account_id, notice_id, detail,"
    " run_id, task_id, try_number) VALUES (:event_id, 'notice_served', :d, :a, :n, :detail,"
    " :run_id, :task_id, :try_number) ON CONFLICT (event_id) DO NOTHING")


def notice_id_for(account_id: str, served_on: date) -> str:
    """Deterministic: one notice per account per service date, whatever the retries."""
    return f"DN-{served_on:%Y%m%d}-{account_id}"


def local_date(stamp: str, tz: str) -> date:
    """The utility's calendar date of a UTC stamp of the outbox."""
    return datetime.fromisoformat(stamp).astimezone(ZoneInfo(tz)).date()


@dataclass
class ServiceResult:
    served: int = 0                 # notice_service rows recorded now
    notices_opened: int = 0         # disconnection notices a service opened now
    contact_gaps: int = 0           # addresses that became contact gaps now
    dates: set[date] = field(default_factory=set)   # service dates touched (notices.csv)

    def as_dict(self) -> dict:
        return {"served": self.served, "notices_opened": self.notices_opened,
                "contact_gaps": self.contact_gaps,
                "dates": sorted(d.isoformat() for d in self.dates)}


@dataclass(frozen=True)
class Recorder:
    """Who records: written on the disconnection log, like every other step."""
    run_id: str = "manual"
    task_id: str = ""
    try_number: int = 1


def record_service(engine: Engine, tz: str, policy: Policy, calendar: BusinessCalendar,
                   by: Recorder = Recorder(), known_by: date | None = None) -> ServiceResult:
    """Record every service and permanent failure not yet recorded. ``known_by`` (a cycle
    date) also records the in-person service of case events that arrived by then."""
    result = ServiceResult()
    with engine.begin() as conn:
        services = []
        for key, account, day, kinds, sent_at in conn.execute(
                sql("records/sent_notice_messages.sql", conn.dialect.name)).all():
            served = local_date(sent_at, tz) if sent_at else as_date(day)
            services += [(f"message:{key}", n, account, served, served, as_date(day))
                         for n in SERVED_NOTICES if n in split_list(kinds)]
        if known_by is not None:
            for event_id, account, note, effective, first_seen in conn.execute(
                    sql("records/in_person_service.sql", conn.dialect.name), {"d": known_by}).all():
                notice = (note or "").strip()
                if notice not in SERVED_NOTICES:
                    log.warning("case event %s: notice_served with note %r names no notice "
                                "(credit_prenotice or disconnection_notice); ignored",
                                event_id, note)
                    continue
                services.append((f"event:{event_id}", notice, account, as_date(effective),
                                 as_date(first_seen), None))
        for source, notice, account, served, known, decided in services:
            conn.execute(_SERVICE, {"source": source, "notice": notice, "account_id": account,
                                    "served_on": served, "known_on": known, "decided_on": decided})
            result.served += 1
            result.dates.add(served)
            if notice == "disconnection_notice":
                result.notices_opened += _open_notice(conn, account, served, source, policy,
                                                      calendar, by)
        for key, account, channel, address, day, claimed, error in conn.execute(
                sql("records/new_permanent_failures.sql", conn.dialect.name)).all():
            since = local_date(claimed, tz) if claimed else as_date(day)
            conn.execute(_GAP, {"account_id": account, "channel": channel, "address": address,
                                "since": since, "reason": f"permanent_failure:{(error or '')[:200]}",
                                "source": f"message:{key}"})
            result.contact_gaps += 1
    if result.served or result.contact_gaps:
        log.info("service recorded: %s", result.as_dict())
    return result


def _open_notice(conn: Connection, account: str, served: date, source: str, policy: Policy,
                 calendar: BusinessCalendar, by: Recorder) -> int:
    """The disconnection notice a service makes, unless one is already open (the same notice by
    the other channel, or in person after delivery): its earliest date counts from service."""
    if conn.execute(_OPEN_NOTICE, {"a": account}).scalar_one():
        return 0
    notice_id = notice_id_for(account, served)
    earliest = calendar.earliest_disconnection(served, policy.disconnection_notice_days)
    conn.execute(_NOTICE, {"n": notice_id, "a": account, "s": served, "e": earliest,
                           "source": source})
    conn.execute(_LOG, {"event_id": f"notice_served:{notice_id}", "d": served, "a": account,
                        "n": notice_id, "detail": f"{source}; earliest {earliest}",
                        "run_id": by.run_id, "task_id": by.task_id, "try_number": by.try_number})
    return 1


def write_served_notices(engine: Engine, outbox, day: date, folder=None):
    """``disconnection/notices.csv`` of D: the notices served (delivered) on D, in byte order.
    Written after every dispatch that served something, so it is complete once D's messages
    went out (deterministic: the same record gives the same bytes)."""
    with engine.connect() as conn:
        rows = conn.execute(sql("records/served_on.sql", conn.dialect.name), {"d": day}).all()
    target = as_storage_path(folder or day_folder(outbox, day)) / "disconnection" / "notices.csv"
    return write_file(target, csv_bytes(NOTICE_COLUMNS, (
        (a, n, as_date(s), as_date(e)) for a, n, s, e in rows)))


def after_dispatch(engine: Engine, outbox, tz: str, policy: Policy, by: Recorder,
                   dates=()) -> dict:
    """Record what a dispatch delivered or lost for good, then write ``notices.csv`` again for
    every date a notice was served on and for the dispatched cycle dates."""
    result = record_service(engine, tz, policy, BusinessCalendar.for_policy(policy), by)
    for day in sorted(result.dates | set(dates)):
        write_served_notices(engine, outbox, day)
    return result.as_dict()
