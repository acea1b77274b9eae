"""Retention (CONTRACT §9): what the collection record may keep, and the purge of the rest.

Categories, each with its rule from the policy's ``[retention]`` (arrears.policy.retention):

``quarantine_raw``   raw quarantined rows, ``quarantine_raw_days`` after their cycle date: the
                     row as delivered is replaced by its sha256; file, line and reason stay.
``messages``         messages as sent (the outbox), ``contact_evidence_years`` after their date:
                     the address is replaced by a hash, the text dropped; ``content_sha256``
                     stays, so a copy of the message can still be proven to be the one sent.
``receipts``         receipts and replies from the channels (CONTRACT §7), the same period:
                     address and text replaced by hashes; status, channel and key stay.
``contact_files``    files in ``<outbox>/<D>/`` that carry contact details or the text sent to a
                     person (letters, ``.eml``, channel ``.jsonl``, posted PDFs, agents' lists),
                     ``contact_evidence_years`` after D;
``bureau_files``     the credit-bureau file of D, ``negative_credit_years`` after D. A purged
                     file is replaced by ``<name>.purged.json`` naming its sha256, which is what
                     its manifest and the audit trail hold, so both still verify.
``personal_data``    accounts that left the extract, once the longest period that applies to
                     them ran out (see :func:`arrears.policy.retention.personal_data_last_kept`):
                     name, address and contact details in every extract that held them, notes
                     of their case events and their messages, replaced by keyed hashes.

Why the audit chain still verifies: its entries never held personal data (ids, codes, amounts,
and sha256 of what was sent or written: see arrears.audit.trail), so a purge changes no entry
and no hash. What is purged is the data the entries point at by hash. Each purge is itself
recorded in the trail (kind ``retention``): per category the rule, the cut-off and the count, and
per account the day it left the extract and the rule that kept it, so an account's timeline
still answers "why" after the name is gone.

Every purge is idempotent: a purged value starts with ``sha256:`` and is never selected again.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Connection, Engine, inspect, text

from arrears.audit.trail import Entry, append_entries, canonical
from arrears.batches.store import PURGED_SUFFIX
from arrears.db import sql
from arrears.outbox_files import as_storage_path, files_under, sha256, write_file
from arrears.policy.retention import (
    AccountRecord, Retention, expired, newest_expired_start_days, newest_expired_start_years,
    personal_data_last_kept,
)

log = logging.getLogger("arrears.retention")
CATEGORIES = ("quarantine_raw", "messages", "receipts", "contact_files", "bureau_files",
              "personal_data")
PURGED = "sha256:"
# Personal data columns of the extract (the channel ids exist once the channel work added them).
ACCOUNT_PII = ("holder_name", "service_address", "email", "mobile", "wechat_openid",
               "app_user_id")
# Files of a day folder carrying contact details or what was sent to a person.
CONTACT_FOLDERS = ("lawyer_letters", "mail", "post")
CONTACT_FILES = ("sms.jsonl", "wechat.jsonl", "push.jsonl", "voice.jsonl", "call_list.csv",
                 "field_visits.csv")
BUREAU_FOLDER = "credit_report"
KEEP_FILES = ("manifest.csv", "REPLAY")
MARKER = ".retention.json"  # per day folder: which file categories are done


def pseudonym(account_id: str, column: str, value: str) -> str:
    """What replaces a personal value: a hash bound to the account and the column, so equal
    values of two accounts do not link them. Short values (a 2-character name) can be found by
    trying candidates against it: it proves a value, it does not hide a guessable one."""
    digest = hashlib.sha256(f"{account_id}\x1f{column}\x1f{value}".encode("utf-8")).hexdigest()
    return PURGED + digest


def content_hash(value: str) -> str:
    return PURGED + hashlib.sha256(value.encode("utf-8")).hexdigest()


def _day(value) -> date | None:
    from arrears.db.values import as_date
    return as_date(value) if value is not None else None


@dataclass
class Plan:
    """What a purge as of ``as_of`` removes; ``counts`` per category for the report."""
    as_of: date
    rules: Retention
    quarantine: list[dict] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    receipts: list[dict] = field(default_factory=list)
    accounts: list[tuple[AccountRecord, date, str]] = field(default_factory=list)
    files: dict[str, list] = field(default_factory=lambda: {"contact_files": [],
                                                              "bureau_files": []})
    cutoffs: dict[str, str] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {"quarantine_raw": len(self.quarantine), "messages": len(self.messages),
                "receipts": len(self.receipts),
                "contact_files": sum(len(m) for _, _, m in self.files["contact_files"]),
                "bureau_files": sum(len(m) for _, _, m in self.files["bureau_files"]),
                "personal_data": len(self.accounts)}


# -- what is due -------------------------------------------------------------------------

def _left_accounts(conn: Connection, as_of: date, rules: Retention):
    for (account, left_on, message, notice, letter, reported) in conn.execute(
            sql("retention/left_accounts.sql", conn.dialect.name), {"d": as_of}).all():
        if left_on is None:
            continue
        contacts = [d for d in (_day(message), _day(notice), _day(letter)) if d is not None]
        record = AccountRecord(account, _day(left_on), max(contacts) if contacts else None,
                               _day(reported))
        last_kept, rule = personal_data_last_kept(record, rules)
        if expired(last_kept, as_of):
            yield record, last_kept, rule


def _day_folders(root, newest: date):
    """Day folders ``<outbox>/<YYYY-MM-DD>/`` dated on or before ``newest``, oldest first."""
    if not root.exists():
        return
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        try:
            day = date.fromisoformat(folder.name)
        except ValueError:
            continue
        if day <= newest and folder.is_dir():
            yield day, folder


def _marker(folder) -> dict:
    path = folder / MARKER
    try:
        return json.loads(path.read_bytes()) if path.exists() else {}
    except (OSError, ValueError):
        return {}


def _is_contact_file(member) -> bool:
    return (member.name in CONTACT_FILES or member.parent.name in CONTACT_FOLDERS) and \
        member.name not in KEEP_FILES and not member.name.endswith(PURGED_SUFFIX)


def _is_bureau_file(member) -> bool:
    return member.parent.name == BUREAU_FOLDER and member.name not in KEEP_FILES and \
        not member.name.endswith(PURGED_SUFFIX)


def _due_files(root, as_of: date, category: str, years: int, wanted: Callable) -> tuple[str, list]:
    cutoff = newest_expired_start_years(as_of, years)
    found = []
    for day, folder in _day_folders(root, cutoff):
        if category in _marker(folder):
            continue  # done on an earlier day: not walked again
        found.append((day, folder, [m for m in files_under(folder) if wanted(m)]))
    return cutoff.isoformat(), found


def plan(engine: Engine, outbox_root, as_of: date, rules: Retention) -> Plan:
    """Everything due for purging as of ``as_of`` (read only)."""
    p = Plan(as_of, rules)
    q_cut = newest_expired_start_days(as_of, rules.quarantine_raw_days)
    m_cut = newest_expired_start_years(as_of, rules.contact_evidence_years)
    p.cutoffs = {"quarantine_raw": q_cut.isoformat(), "messages": m_cut.isoformat(),
                 "receipts": m_cut.isoformat()}
    with engine.connect() as conn:
        p.quarantine = [{"cycle_date": d, "file": f, "line": n, "raw": r} for d, f, n, r in
                        conn.execute(sql("retention/expired_quarantine.sql", conn.dialect.name),
                                     {"cutoff": q_cut}).all()]
        p.messages = [{"idem_key": k, "account_id": a, "address": addr} for k, a, addr in
                      conn.execute(sql("retention/expired_messages.sql", conn.dialect.name),
                                   {"cutoff": m_cut}).all()]
        p.receipts = [{"receipt_id": r, "account_id": a, "address": addr, "detail": d}
                      for r, a, addr, d in conn.execute(
                          sql("retention/expired_receipts.sql", conn.dialect.name),
                          {"cutoff": m_cut}).all()]
        p.accounts = list(_left_accounts(conn, as_of, rules))
    if outbox_root is not None:
        outbox_root = as_storage_path(outbox_root)
        for category, years, wanted in (
                ("contact_files", rules.contact_evidence_years, _is_contact_file),
                ("bureau_files", rules.negative_credit_years, _is_bureau_file)):
            p.cutoffs[category], p.files[category] = _due_files(outbox_root, as_of, category,
                                                                years, wanted)
    return p


# -- the purge ---------------------------------------------------------------------------

def _digest(items) -> str:
    return hashlib.sha256(canonical(items).encode("utf-8")).hexdigest()[:16]


def audit_entries(p: Plan, run_id: str = "", task_id: str = "") -> list[Entry]:
    """The purge as the audit trail records it: one entry per category that purged something,
    one per account whose personal data went."""
    entries = []
    rules = p.rules
    described = {
        "quarantine_raw": (f"raw rows older than {rules.quarantine_raw_days} days",
                           [[str(r["cycle_date"])[:10], r["file"], r["line"]] for r in p.quarantine]),
        "messages": (f"messages older than {rules.contact_evidence_years} years",
                     [m["idem_key"] for m in p.messages]),
        "receipts": (f"receipts and replies older than {rules.contact_evidence_years} years",
                     [r["receipt_id"] for r in p.receipts]),
        "contact_files": (f"contact files older than {rules.contact_evidence_years} years",
                          [[str(d), f.name] for d, _, fs in p.files["contact_files"] for f in fs]),
        "bureau_files": (f"bureau files older than {rules.negative_credit_years} years",
                         [[str(d), f.name] for d, _, fs in p.files["bureau_files"] for f in fs]),
    }
    for category, (rule, items) in described.items():
        if not items:
            continue
        entries.append(Entry(
            key=f"retention/{p.as_of}/{category}/{_digest(items)}", kind="retention",
            cycle_date=p.as_of, run_id=run_id, task_id=task_id,
            payload={"category": category, "rule": rule, "cutoff": p.cutoffs.get(category),
                     "purged": len(items), "items_digest": _digest(items)}))
    for record, last_kept, rule in p.accounts:
        entries.append(Entry(
            key=f"retention/personal_data/{record.account_id}/{record.left_on}", kind="retention",
            account_id=record.account_id, cycle_date=p.as_of, run_id=run_id, task_id=task_id,
            payload={"category": "personal_data", "left_extract_on": record.left_on,
                     "last_contact": record.last_contact, "last_reported": record.last_reported,
                     "kept_until": last_kept, "rule": rule}))
    return entries


def _account_columns(conn: Connection) -> list[str]:
    present = {c["name"] for c in inspect(conn).get_columns("extract_accounts")}
    return [c for c in ACCOUNT_PII if c in present]


def _purge_account(conn: Connection, account_id: str, columns: list[str]) -> None:
    cols = ", ".join(columns)
    rows = conn.execute(text(f"SELECT cycle_date, {cols} FROM extract_accounts"
                             " WHERE account_id = :a AND holder_name NOT LIKE 'sha256:%'"),
                        {"a": account_id}).all()
    assign = ", ".join(f"{c} = :{c}" for c in columns)
    update = text(f"UPDATE extract_accounts SET {assign} WHERE cycle_date = :d AND account_id = :a")
    for day, *values in rows:
        conn.execute(update, {"d": day, "a": account_id, **{
            c: pseudonym(account_id, c, v) if v else (v or "") for c, v in zip(columns, values)}})
    for day in {day for day, *_ in rows}:  # the log masker's digests of those extracts go too
        conn.execute(text("DELETE FROM pii_digests WHERE cycle_date = :d"), {"d": day})
    for event_id, note in conn.execute(text(
            "SELECT event_id, note FROM case_events WHERE account_id = :a AND note <> ''"
            " AND note NOT LIKE 'sha256:%'"), {"a": account_id}).all():
        conn.execute(text("UPDATE case_events SET note = :n WHERE event_id = :e"),
                     {"n": pseudonym(account_id, "note", note), "e": event_id})
    receipts = conn.execute(text(
        "SELECT receipt_id, account_id, address, detail FROM channel_receipts"
        " WHERE account_id = :a AND ((address <> '' AND address NOT LIKE 'sha256:%')"
        " OR (detail <> '' AND detail NOT LIKE 'sha256:%'))"), {"a": account_id}).all()
    if receipts:
        conn.execute(sql("retention/purge_receipt.sql", conn.dialect.name),
                     [_purged_receipt(dict(zip(("receipt_id", "account_id", "address", "detail"),
                                               r))) for r in receipts])
    messages = conn.execute(text("SELECT idem_key, address FROM outbox WHERE account_id = :a"
                                 " AND address NOT LIKE 'sha256:%'"), {"a": account_id}).all()
    if messages:
        conn.execute(sql("retention/purge_message.sql", conn.dialect.name),
                     [{"idem_key": k, "address": pseudonym(account_id, "address", a)}
                      for k, a in messages])


def _purged_receipt(r: dict) -> dict:
    def gone(value: str, purge) -> str:
        return value if not value or value.startswith(PURGED) else purge(value)
    return {"receipt_id": r["receipt_id"],
            "address": gone(r["address"], lambda v: pseudonym(r["account_id"], "address", v)),
            "detail": gone(r["detail"], content_hash)}


def _purge_files(p: Plan, category: str) -> int:
    done = 0
    for day, folder, members in p.files[category]:
        for member in members:
            data = member.read_bytes()
            stone = member.parent / (member.name + PURGED_SUFFIX)
            write_file(stone, (json.dumps({
                "file": member.name, "sha256": sha256(data), "bytes": len(data),
                "purged_on": p.as_of.isoformat(), "category": category,
                "rule": f"retention: {category} of {day}"}, indent=2, sort_keys=True)
                + "\n").encode("utf-8"))
            member.unlink()
            done += 1
        marker = _marker(folder)
        marker[category] = p.as_of.isoformat()
        write_file(folder / MARKER, json.dumps(marker, sort_keys=True).encode("utf-8"))
    return done


def apply(engine: Engine, p: Plan, run_id: str = "", task_id: str = "") -> int:
    """Record the purge in the audit trail and purge the database rows in one transaction,
    then the files (a crash between leaves files that the next run purges and records)."""
    entries = audit_entries(p, run_id, task_id)
    with engine.begin() as conn:
        recorded = append_entries(conn, entries)  # takes the chain's lock first
        if p.quarantine:
            conn.execute(sql("retention/purge_quarantine_row.sql", conn.dialect.name),
                         [{**r, "raw": content_hash(r["raw"])} for r in p.quarantine])
        if p.messages:
            conn.execute(sql("retention/purge_message.sql", conn.dialect.name),
                         [{"idem_key": m["idem_key"],
                           "address": pseudonym(m["account_id"], "address", m["address"])}
                          for m in p.messages])
        if p.receipts:
            conn.execute(sql("retention/purge_receipt.sql", conn.dialect.name),
                         [_purged_receipt(r) for r in p.receipts])
        if p.accounts:
            columns = _account_columns(conn)
            for n, (record, _, _) in enumerate(p.accounts, start=1):
                _purge_account(conn, record.account_id, columns)
                if n % 10000 == 0:
                    log.info("personal data purged for %d of %d accounts", n, len(p.accounts))
    for category in ("contact_files", "bureau_files"):
        _purge_files(p, category)
    return recorded


def run(engine: Engine, outbox_root, as_of: date, rules: Retention, *, dry_run: bool = False,
        run_id: str = "", task_id: str = "") -> dict:
    """Plan and (unless ``dry_run``) purge; returns per category what was (or would be) purged."""
    started = datetime.now()
    p = plan(engine, outbox_root, as_of, rules)
    recorded = 0 if dry_run else apply(engine, p, run_id, task_id)
    return {"as_of": as_of.isoformat(), "dry_run": dry_run, "purged": p.counts,
            "cutoffs": p.cutoffs, "audit_entries": recorded,
            "seconds": round((datetime.now() - started).total_seconds(), 2)}
