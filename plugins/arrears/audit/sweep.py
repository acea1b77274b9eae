"""What the audit task records: the day's decisions and every side effect not yet in the trail.

Each source is a table or a manifest file that may not exist (the delivery, batch and
disconnection steps are optional parts of a deployment); a missing source is skipped and
reported. Keys are natural keys of what happened, so sweeping again adds nothing, and a changed
outcome (a message that went from deferred to sent, a decision re-made after a re-delivery)
adds a new entry instead of hiding the earlier one.
"""
from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from datetime import date, timedelta

from sqlalchemy import Connection, inspect, text

from arrears.audit.pii import mask_text
from arrears.audit.trail import Entry, canonical
from arrears.db.values import as_date
from arrears.cycle.run import CycleRun
from arrears.outbox_files import run_folder
from arrears.records.decided import Decided

# Messages change state after their cycle date (deferred to the next window, retried): look back.
MESSAGE_LOOKBACK_DAYS = 7
# Disconnection records change after their date (a supervisor answers late, an order is released
# up to notice_valid_days after the earliest date, a notice closes weeks after service): the
# sweep reads records dated from this many days before the last checkpointed audit, so its cost
# stays flat with the years instead of re-reading every record since the start.
SWEEP_WINDOW_DAYS = 45
BATCHES = ("lawyer_letters", "credit_report")


def _split(value: str) -> list[str]:
    return [v for v in (value or "").split(";") if v]


def _digest(payload: dict) -> str:
    return hashlib.sha256(canonical(payload).encode("utf-8")).hexdigest()[:16]


def replay_prefix(run: CycleRun) -> str:
    """Where a replay's own entries are keyed: never a key of what happened on D."""
    return f"replay/{run.cycle_date}/{run.run_id}/"


def decision_entries(conn: Connection, run: CycleRun, decide_try: int = 0) -> Iterator[Entry]:
    """One entry per decision of D: stage, reason codes, policy version and the inputs that
    drove it (DPD, outstanding, late fee per bill, holds). A replay's are its own decisions,
    under its own keys."""
    decided = Decided.of(run)
    prefix = replay_prefix(run) if run.replay else ""
    bills: dict[str, list] = {}
    for account, bill, days, fee in conn.execute(text(
            "SELECT account_id, bill_id, days_overdue, late_fee_fen"
            f" FROM {decided.table('decision_bills')} b"
            " WHERE cycle_date = :d ORDER BY account_id, bill_id"), decided.params()):
        bills.setdefault(account, []).append({"bill_id": bill, "days_overdue": days,
                                              "late_fee_fen": fee})
    rows = conn.execute(text(
        "SELECT account_id, stage, stage_entered_on, dpd, outstanding_fen, late_fee_fen, actions,"
        " holds, message_kinds, reasons, policy_version, replay, run_id, segment, late_fee_waived"
        f" FROM {decided.table('decisions')} d WHERE cycle_date = :d"), decided.params()).all()
    for (account, stage, entered, dpd, outstanding, fee, actions, holds, kinds, reasons,
         version, replay, run_id, segment, waived) in sorted(rows, key=lambda r: r[0]):
        payload = {
            "stage": stage, "stage_entered_on": as_date(entered).isoformat(), "dpd": dpd,
            "outstanding_fen": outstanding, "late_fee_fen": fee, "actions": _split(actions),
            "holds": _split(holds), "message_kinds": _split(kinds), "reasons": _split(reasons),
            "policy_version": version, "replay": bool(replay), "bills": bills.get(account, []),
            "segment": segment, "late_fee_waived": bool(waived),
        }
        yield Entry(key=f"{prefix}decision/{run.cycle_date}/{account}/{_digest(payload)}",
                    kind="decision",
                    account_id=account, cycle_date=run.cycle_date, payload=payload,
                    run_id=run_id or run.run_id, task_id="decide",
                    try_number=decide_try if (run_id or run.run_id) == run.run_id else 0)


def message_entries(conn: Connection, run: CycleRun) -> Iterator[Entry]:
    """Outbox messages of D and the days before it, one entry per outcome a message reached.
    The address and the text are not recorded: the sha256 of the rendered content is."""
    rows = conn.execute(text(
        "SELECT idem_key, cycle_date, account_id, channel, kinds, template, template_version,"
        " content_sha256, message_id, status, attempts, last_error, sent_at, run_id, task_id,"
        " try_number FROM outbox WHERE cycle_date BETWEEN :d0 AND :d"
        " AND status NOT IN ('queued', 'sending')"),
        {"d0": run.cycle_date - timedelta(days=MESSAGE_LOOKBACK_DAYS), "d": run.cycle_date}).all()
    for (key, day, account, channel, kinds, template, version, sha, message_id, status, attempts,
         error, sent_at, run_id, task_id, try_number) in sorted(rows, key=lambda r: r[0]):
        yield Entry(key=f"message/{key}/{status}", kind="message", account_id=account,
                    cycle_date=as_date(day), run_id=run_id, task_id=task_id,
                    try_number=try_number or 0,
                    payload={"channel": channel, "kinds": _split(kinds), "template": template,
                             "template_version": version, "content_sha256": sha,
                             "message_id": message_id, "outcome": status, "attempts": attempts,
                             # A gateway's error can quote the address: masked.
                             "error": mask_text((error or "")[:200]) if status != "sent" else "",
                             "sent_at": sent_at or ""})


def _read_manifest(path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def batch_entries(outbox, run: CycleRun) -> Iterator[Entry]:
    """The run's batch files as their manifests list them (a batch without manifest is not
    complete, so it is not recorded yet), plus the manifest itself: the day's, or a replay's
    own (under its folder and its own keys)."""
    replay = run.replay
    folder = run_folder(outbox, run)  # a replay's own (arrears.outbox_files)
    for batch in BATCHES:
        manifest = folder / batch / "manifest.csv"
        if not manifest.is_file():
            continue
        data = manifest.read_bytes()
        manifest_sha = hashlib.sha256(data).hexdigest()
        rows = _read_manifest(manifest)
        own = replay_prefix(run) if replay else ""
        prefix = f"{run.cycle_date}/{batch}"
        # Written by this run's task of the batch's name (a file already recorded by an
        # earlier run has the same key); its try number is not in the manifest: 0.
        yield Entry(key=f"{own}batch_file/{prefix}/manifest.csv/{manifest_sha}", kind="batch_file",
                    cycle_date=run.cycle_date, run_id=run.run_id, task_id=batch,
                    try_number=0,
                    payload={"batch": batch, "file": "manifest.csv", "sha256": manifest_sha,
                             "records": len(rows), "replay": replay})
        for row in rows:
            file_name, sha = row.get("file", ""), row.get("sha256", "")
            if not file_name and not sha:
                file_name = "(record)"
            payload = {"batch": batch, "file": file_name, "sha256": sha or manifest_sha,
                       "replay": replay}
            for amount in ("outstanding", "late_fee"):
                if row.get(amount):
                    payload[amount] = row[amount]
            yield Entry(key=f"{own}batch_file/{prefix}/{file_name}/{row.get('account_id', '')}/"
                            f"{sha or manifest_sha}",
                        kind="batch_file", account_id=row.get("account_id", ""),
                        cycle_date=run.cycle_date, run_id=run.run_id, task_id=batch,
                        try_number=0, payload=payload)


def sweep_since(conn: Connection, cycle_date: date) -> date:
    """The oldest record date the sweep of D reads: the window before the last checkpoint
    anchored before D (or before D, when that is older); everything when the trail has no
    checkpoint yet (the first sweep after an upgrade catches up once)."""
    from arrears.audit.checkpoint import latest_before
    cp = latest_before(conn, cycle_date)
    if cp is None:
        return date(1, 1, 1)
    return min(cp.cycle_date, cycle_date) - timedelta(days=SWEEP_WINDOW_DAYS)


def disconnection_entries(conn: Connection, run: CycleRun, tables: set[str],
                          since: date = date(1, 1, 1)) -> Iterator[Entry]:
    """Notices, proposals, approvals, orders and the disconnection log dated from ``since`` up
    to D. Approvals and orders come from the release DAG, so each cycle's sweep picks up what
    was released since."""
    d = {"d": run.cycle_date, "since": since}
    # Who served or closed a notice: the disconnection log names the run, task and try.
    acted: dict[tuple[str, str], tuple[str, str, int]] = {}
    if "disconnection_log" in tables:
        for notice, event, run_id, task_id, try_number in conn.execute(text(
                "SELECT notice_id, event, run_id, task_id, try_number FROM disconnection_log"
                " WHERE event IN ('notice_served', 'notice_cancelled') AND cycle_date <= :d"
                " AND cycle_date >= :since"
                " ORDER BY cycle_date"), d).all():
            acted.setdefault((notice, "closed" if event == "notice_cancelled" else "served"),
                             (run_id, task_id, try_number))
    if "disconnection_notices" in tables:
        for notice, account, served, earliest, closed, reason in conn.execute(text(
                "SELECT notice_id, account_id, served_on, earliest_disconnection, closed_on,"
                " closed_reason FROM disconnection_notices WHERE served_on <= :d"
                " AND (served_on >= :since OR closed_on >= :since)"), d).all():
            state = f"closed/{as_date(closed)}" if closed else "served"
            run_id, task_id, try_number = acted.get(
                (notice, "closed" if closed else "served"), (run.run_id, run.task_id, 0))
            yield Entry(key=f"notice/{notice}/{state}", kind="notice", account_id=account,
                        cycle_date=as_date(closed) if closed else as_date(served),
                        run_id=run_id, task_id=task_id, try_number=try_number,
                        payload={"notice_id": notice, "served_on": as_date(served),
                                 "earliest_disconnection": as_date(earliest),
                                 "closed_on": as_date(closed), "closed_reason": reason or ""})
    if "disconnection_proposals" in tables:
        for row in conn.execute(text(
                "SELECT cycle_date, notice_id, account_id, outstanding_fen, earliest_disconnection,"
                " run_id, task_id, try_number FROM disconnection_proposals"
                " WHERE cycle_date <= :d AND cycle_date >= :since"), d).all():
            yield Entry(key=f"proposal/{as_date(row[0])}/{row[1]}", kind="proposal",
                        account_id=row[2], cycle_date=as_date(row[0]), run_id=row[5],
                        task_id=row[6], try_number=row[7],
                        payload={"notice_id": row[1], "outstanding_fen": row[3],
                                 "earliest_disconnection": as_date(row[4])})
    if "disconnection_approvals" in tables:
        for row in conn.execute(text(
                "SELECT approval_id, cycle_date, outcome, responded_by, responded_at, proposals,"
                " amount_fen, run_id, task_id, try_number FROM disconnection_approvals"
                " WHERE cycle_date <= :d AND cycle_date >= :since"), d).all():
            yield Entry(key=f"approval/{row[0]}/{row[2]}", kind="approval",
                        cycle_date=as_date(row[1]), run_id=row[7], task_id=row[8],
                        try_number=row[9],
                        payload={"approval_id": row[0], "outcome": row[2], "responded_by": row[3],
                                 "responded_at": row[4], "proposals": row[5],
                                 "amount_fen": row[6]})
    if "disconnection_orders" in tables:
        for row in conn.execute(text(
                "SELECT order_id, notice_id, account_id, cycle_date, released_on, approved_by,"
                " approval_id, run_id, task_id, try_number FROM disconnection_orders"
                " WHERE released_on <= :d AND released_on >= :since"), d).all():
            yield Entry(key=f"order/{row[0]}", kind="order", account_id=row[2],
                        cycle_date=as_date(row[4]), run_id=row[7], task_id=row[8],
                        try_number=row[9],
                        payload={"order_id": row[0], "notice_id": row[1],
                                 "batch_date": as_date(row[3]), "approved_by": row[5],
                                 "approval_id": row[6]})
    if "disconnection_log" in tables:
        for row in conn.execute(text(
                "SELECT event_id, event, cycle_date, account_id, notice_id, detail, run_id,"
                " task_id, try_number FROM disconnection_log WHERE cycle_date <= :d"
                " AND cycle_date >= :since"), d).all():
            yield Entry(key=f"disconnection_event/{row[0]}", kind="disconnection_event",
                        account_id=row[3], cycle_date=as_date(row[2]), run_id=row[6],
                        task_id=row[7], try_number=row[8],
                        payload={"event": row[1], "notice_id": row[4], "detail": row[5]})


def quarantine_entry(conn: Connection, run: CycleRun) -> Entry | None:
    rows = conn.execute(text("SELECT file, line, reason FROM quarantine WHERE cycle_date = :d"
                             " ORDER BY file, line"), {"d": run.cycle_date}).all()
    if not rows:
        return None
    # File, line and reason only: the raw row holds personal data.
    payload = {"rows": [{"file": f, "line": n, "reason": r} for f, n, r in rows]}
    return Entry(key=f"quarantine/{run.cycle_date}/{_digest(payload)}", kind="quarantine",
                 cycle_date=run.cycle_date, run_id=run.run_id, task_id=run.task_id,
                 try_number=run.try_number, payload=payload)


def run_entries(conn: Connection, run: CycleRun) -> Iterator[Entry]:
    """Each run of D (normal, replay, backfill allowed to contact) as cycle_runs has it."""
    for run_id, run_type, replay, allow_contact, started in conn.execute(text(
            "SELECT run_id, run_type, replay, allow_contact, started_at FROM cycle_runs"
            " WHERE cycle_date = :d ORDER BY started_at, run_id"), {"d": run.cycle_date}).all():
        yield Entry(key=f"cycle/{run.cycle_date}/{run_id}/{run_type}/replay_{int(replay)}",
                    kind="cycle", cycle_date=run.cycle_date, run_id=run_id, task_id="decide",
                    payload={"event": "cycle_run", "run_type": run_type, "replay": bool(replay),
                             "allow_contact": bool(allow_contact), "started_at": started})


def replay_run_entry(conn: Connection, run: CycleRun) -> Iterator[Entry]:
    """The replay's own run, keyed as run_entries keys a replay (cycle_runs keeps the row of a
    real run that a backfill reprocessed under the same run id: the entry comes from the run)."""
    started = conn.execute(text("SELECT started_at FROM cycle_runs WHERE run_id = :r AND replay = 1"),
                           {"r": run.run_id}).scalar() or ""
    yield Entry(key=f"cycle/{run.cycle_date}/{run.run_id}/{run.run_type}/replay_1", kind="cycle",
                cycle_date=run.cycle_date, run_id=run.run_id, task_id="decide",
                payload={"event": "cycle_run", "run_type": run.run_type, "replay": True,
                         "allow_contact": bool(run.allow_contact), "started_at": started})


def collect(conn: Connection, run: CycleRun, outbox, decide_try: int = 0
            ) -> tuple[list[Entry], dict[str, str]]:
    """Every entry the sweep would record for D, and per source whether it was swept or why not.
    A replay records only its own entries (its run, its decisions, its batch files), under
    keys of its own: the entries of what happened on D stay as they were."""
    if run.replay:
        found = [*replay_run_entry(conn, run), *decision_entries(conn, run, decide_try),
                 *batch_entries(outbox, run)]
        note = "not swept by a replay (what happened on D is the real runs' to record)"
        return found, {"replay": f"own entries under {replay_prefix(run)}", "decisions": "swept",
                       "batches": "swept", "quarantine": note, "messages": note,
                       "disconnection": note}
    tables = set(inspect(conn).get_table_names())
    found: list[Entry] = []
    sources: dict[str, str] = {}
    if "cycle_runs" in tables:
        found += run_entries(conn, run)
    found += decision_entries(conn, run, decide_try)
    sources["decisions"] = "swept"
    if (q := quarantine_entry(conn, run)) is not None:
        found.append(q)
    sources["quarantine"] = "swept"
    if "outbox" in tables:
        found += message_entries(conn, run)
        sources["messages"] = "swept"
    else:
        sources["messages"] = "skipped: no outbox table (delivery not installed)"
    batch = list(batch_entries(outbox, run))
    found += batch
    sources["batches"] = "swept" if batch else "skipped: no manifest under the day's folder"
    if tables & {"disconnection_notices", "disconnection_proposals", "disconnection_orders"}:
        since = sweep_since(conn, run.cycle_date)
        found += disconnection_entries(conn, run, tables, since)
        sources["disconnection"] = f"swept from {since}" if since.year > 1 else "swept"
    else:
        sources["disconnection"] = "skipped: no disconnection tables"
    return found, sources
