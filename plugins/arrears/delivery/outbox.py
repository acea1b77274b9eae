"""The outbox: every message recorded under its idempotency key before anything is dispatched.

Key ``<cycle date>:<account id>:<channel>``: one message per channel per account per day, so a
retry, a rerun of the date or a second dispatcher can only ever find the same row again.
"""
from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import Engine, text

from arrears.db.values import as_date, split_list
from arrears.cycle.run import CycleRun
from arrears.db import sql
from arrears.delivery.render import message_data, render
from arrears.channels.registry import registry
from arrears.policy.config import Policy
from arrears.policy.treatment import next_legal_step

log = logging.getLogger(__name__)

# Statuses a dispatcher may pick up; `sending` only once its lease ran out (a crashed attempt).
UNSENT = ("queued", "deferred", "failed")
# Statuses a rerun of D may still rewrite (nothing went out under them).
REWRITABLE = (*UNSENT, "cancelled", "standby")
# `standby`: a later channel of a slot (CONTRACT §7), queued only when the one before it in the
# slot fails permanently; a standby that stays so was not needed.
STATUSES = ("queued", "sending", "sent", "deferred", "failed", "permanent_failure", "expired",
            "cancelled", "standby")


def idem_key(cycle_date: date, account_id: str, channel: str) -> str:
    return f"{cycle_date.isoformat()}:{account_id}:{channel}"


def message_id_for(key: str, domain: str) -> str:
    """Deterministic Message-ID: a resend of the same key is recognisably the same message."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def utc_stamp(moment: datetime) -> str:
    """Fixed-width UTC text, so stamps compare correctly as strings on both databases."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Attempt:
    """Who is sending: recorded on every row it touches."""
    run_id: str = "manual"
    task_id: str = ""
    try_number: int = 1


def _notices(conn, cycle_date: date) -> tuple[dict, dict]:
    served, cancelled = {}, {}
    for aid, served_on, earliest, closed_on, reason in conn.execute(
            sql("delivery/notices.sql", conn.dialect.name), {"d": cycle_date}):
        if as_date(served_on) == cycle_date:
            served[aid] = as_date(earliest)
        elif closed_on is not None and as_date(closed_on) <= cycle_date and reason != "order_released":
            cancelled[aid] = as_date(served_on)
    return served, cancelled


def planned_messages(engine: Engine, cycle_date: date, policy: Policy, mail_domain: str):
    """(row dict) for every message D's decisions call for, rendered, in key order."""
    with engine.connect() as conn:
        dialect = conn.dialect.name
        bills = defaultdict(list)
        for aid, period, due, open_fen, days, fee in conn.execute(
                sql("delivery/message_bills.sql", dialect), {"d": cycle_date}):
            bills[aid].append((period, as_date(due), open_fen, days, fee))
        served, cancelled = _notices(conn, cycle_date)
        decisions = conn.execute(sql("delivery/due_messages.sql", dialect), {"d": cycle_date}).all()
    for row in decisions:
        aid, actions, kinds, dpd, outstanding, fee, decided_earliest, stage = row[:8]
        columns = row._mapping
        kinds = [k for k in kinds.split(";") if k]
        report_from = cycle_date + timedelta(days=policy.prenotice_lead_days)
        # A notice served already names its own date; one decided today names the decision's.
        earliest = served.get(aid) or as_date(decided_earliest)
        segment = columns["segment"]
        step, step_on = (next_legal_step(segment, dpd, outstanding, kinds, cycle_date, policy,
                                         report_from, earliest)
                         if segment == "wilful" else ("", None))
        data = message_data(
            account_id=aid, holder_name=columns["holder_name"], language=columns["language"],
            kinds=kinds, cycle_date=cycle_date,
            outstanding_fen=outstanding, late_fee_fen=fee, dpd=dpd,
            service_address=columns["service_address"], bills=bills.get(aid, ()),
            report_from=report_from, earliest_disconnection=earliest,
            cancelled_served_on=cancelled.get(aid), segment=segment,
            late_fee_waived=bool(columns["late_fee_waived"]), next_step=step, next_step_on=step_on)
        chosen, held = split_list(actions), split_list(columns["holds"])
        channels = registry()
        for name, channel in channels.items():
            if name not in chosen:
                continue
            contact = columns[channel.address_column]
            if not contact:  # the policy already withholds a channel without contact details
                continue
            later = fallbacks(policy, stage, name)
            yield message_row(cycle_date, aid, name, contact, data, mail_domain, fallback=later)
            # The slot's later channels the account can be reached on, on standby in order.
            before = idem_key(cycle_date, aid, name)
            for spare in filter(None, later.split(";")):
                address = columns[channels[spare].address_column]
                if not address or f"opt_out_{spare}" in held:
                    continue
                yield {**message_row(cycle_date, aid, spare, address, data, mail_domain,
                                     fallback_of=before), "status": "standby"}
                before = idem_key(cycle_date, aid, spare)


def fallbacks(policy: Policy, stage: str, channel: str) -> str:
    """The channels after ``channel`` in its slot of the stage (CONTRACT §7), as a ';'-list."""
    for slot in policy.slots_for(stage):
        if channel in slot:
            return ";".join(slot[slot.index(channel) + 1:])
    return ""


def message_row(cycle_date: date, account_id: str, channel: str, address: str, data,
                mail_domain: str, fallback: str = "", fallback_of: str = "") -> dict:
    """The outbox row of one message, rendered."""
    key = idem_key(cycle_date, account_id, channel)
    rendered = render(channel, data)
    return {"idem_key": key, "cycle_date": cycle_date, "account_id": account_id,
            "channel": channel, "address": address, "language": data.language,
            "kinds": ";".join(data.kinds), "template": rendered.template,
            "template_version": rendered.template_version, "subject": rendered.subject,
            "body_text": rendered.text, "body_html": rendered.html,
            "content_sha256": rendered.content_sha256,
            "message_id": message_id_for(key, mail_domain),
            "fallback": fallback, "fallback_of": fallback_of, "status": "queued"}


_INSERT = text(
    "INSERT INTO outbox (idem_key, cycle_date, account_id, channel, address, language, kinds,"
    " template, template_version, subject, body_text, body_html, content_sha256, message_id,"
    " status, queued_at, run_id, task_id, try_number, fallback, fallback_of)"
    " VALUES (:idem_key, :cycle_date, :account_id, :channel, :address, :language, :kinds,"
    " :template, :template_version, :subject, :body_text, :body_html, :content_sha256,"
    " :message_id, :status, :now, :run_id, :task_id, :try_number, :fallback, :fallback_of)"
    " ON CONFLICT (idem_key) DO NOTHING")
_REWRITE = text(
    "UPDATE outbox SET address = :address, language = :language, kinds = :kinds,"
    " template = :template, template_version = :template_version, subject = :subject,"
    " body_text = :body_text, body_html = :body_html, content_sha256 = :content_sha256,"
    " fallback = :fallback, fallback_of = :fallback_of, last_error = '', queued_at = :now,"
    # an activated standby keeps its place in the queue
    " status = CASE WHEN :status = 'standby' AND status IN ('queued', 'deferred', 'failed')"
    "   THEN status ELSE :status END"
    " WHERE idem_key = :idem_key"
    " AND status IN ('queued', 'deferred', 'failed', 'cancelled', 'standby')")


WRITE_BATCH = 1000


def _write(conn, inserts: list[dict], rewrites: list[dict]) -> None:
    for statement, batch in ((_INSERT, inserts), (_REWRITE, rewrites)):
        if batch:
            conn.execute(statement, batch)
            batch.clear()


@dataclass
class QueueResult:
    queued: int = 0          # new rows
    rewritten: int = 0       # unsent rows whose content changed on a rerun of D
    unchanged: int = 0       # already recorded (sent or not): nothing to do
    cancelled: int = 0       # unsent rows D no longer wants
    standby: int = 0         # later channels of a slot, kept for a permanent failure (§7)
    replay: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def queue_messages(engine: Engine, run: CycleRun, policy: Policy, mail_domain: str,
                   now: datetime) -> QueueResult:
    """Record D's messages in the outbox (idempotent). A replay run records nothing."""
    result = QueueResult(replay=run.replay)
    if run.replay:
        return result
    d = {"d": run.cycle_date}
    stamp = utc_stamp(now)
    attempt = {"run_id": run.run_id, "task_id": run.task_id, "try_number": run.try_number}
    with engine.begin() as conn:
        existing = {k: (s, sha) for k, s, sha in conn.execute(text(
            "SELECT idem_key, status, content_sha256 FROM outbox WHERE cycle_date = :d"), d)}
        wanted = set()
        inserts, rewrites = [], []  # written a batch per statement: one round trip, not one per row
        for row in planned_messages(engine, run.cycle_date, policy, mail_domain):
            key = row["idem_key"]
            wanted.add(key)
            if key not in existing:
                inserts.append({**row, **attempt, "now": stamp})
                if row["status"] == "standby":
                    result.standby += 1
                else:
                    result.queued += 1
            elif existing[key][0] in REWRITABLE and (existing[key][1] != row["content_sha256"]
                                                     or existing[key][0] == "cancelled"):
                rewrites.append({**row, "now": stamp})
                result.rewritten += 1
            else:
                result.unchanged += 1
            if len(inserts) + len(rewrites) >= WRITE_BATCH:
                _write(conn, inserts, rewrites)
            if len(wanted) % 5000 == 0:
                log.info("outbox for %s: %d messages recorded so far", run.cycle_date, len(wanted))
        _write(conn, inserts, rewrites)
        for key, (status, _) in existing.items():
            if key not in wanted and status in (*UNSENT, "standby"):
                conn.execute(text(
                    "UPDATE outbox SET status = 'cancelled', last_error = :why WHERE idem_key = :k"
                    " AND status IN ('queued', 'deferred', 'failed', 'standby')"),
                    {"k": key, "why": f"the decision of the rerun {run.run_id} no longer asks for it"})
                result.cancelled += 1
    return result


def message_counts(engine: Engine, cycle_date: date) -> dict:
    """D's messages by outbox status, every status present (zeros included)."""
    counts = dict.fromkeys(STATUSES, 0)
    with engine.connect() as conn:
        for status, n in conn.execute(text(
                "SELECT status, COUNT(*) FROM outbox WHERE cycle_date = :d GROUP BY status"),
                {"d": cycle_date}):
            counts[status] = n
    return counts
