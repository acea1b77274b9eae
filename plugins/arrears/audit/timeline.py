"""What auditors read: an account's timeline and a cycle's summary, from the audit trail only.

What happened and what replays recomputed are kept apart: a replay (backfill, dry run) records
its own decisions and batch files under keys of its own (``replay/<D>/<run id>/…``), and the
timeline shows them in a section of their own, never mixed with what happened."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection

from arrears.audit import trail
from arrears.money import format_fen


@dataclass(frozen=True)
class Step:
    seq: int
    cycle_date: str
    kind: str
    what: str          # one line: what happened
    rule: str          # the rule codes / outcome that decided it
    run_id: str
    task_id: str
    try_number: int
    replay: bool = False   # recomputed by a replay run: nothing in it happened


def is_replay(entry: trail.Recorded) -> bool:
    """An entry a replay recorded about itself (older replays marked their payload only)."""
    return entry.entry_key.startswith("replay/") or bool(entry.payload.get("replay"))


def _fen(value) -> str:
    return format_fen(int(value)) if value not in (None, "") else ""


def describe(entry: trail.Recorded) -> tuple[str, str]:
    """(what, rule) for one entry, in the domain's words."""
    p = entry.payload
    if entry.kind == "decision":
        acts = ", ".join(p.get("actions") or []) or "no action"
        holds = f"; holds: {', '.join(p['holds'])}" if p.get("holds") else ""
        replay = " [replay: nothing sent]" if p.get("replay") else ""
        segment = f" [{p['segment']}]" if p.get("segment") else ""
        waived = " (waived)" if p.get("late_fee_waived") else ""
        what = (f"{p.get('stage')}{segment} at DPD {p.get('dpd')}, outstanding {_fen(p.get('outstanding_fen'))},"
                f" late fee {_fen(p.get('late_fee_fen'))}{waived}: {acts}{holds}{replay}")
        return what, f"{'; '.join(p.get('reasons') or [])} (policy {p.get('policy_version')})"
    if entry.kind == "message":
        what = (f"{p.get('channel')} message {p.get('outcome')}: template {p.get('template')}"
                f" v{p.get('template_version')}, content sha256 {str(p.get('content_sha256'))[:16]}…")
        rule = "carries " + "+".join(p.get("kinds") or []) if p.get("kinds") else p.get("outcome", "")
        if p.get("error"):
            rule += f"; error: {p['error']}"
        return what, rule
    if entry.kind == "batch_file":
        what = f"{p.get('batch')} file {p.get('file')} sha256 {str(p.get('sha256'))[:16]}…"
        if p.get("outstanding"):
            what += f", outstanding {p['outstanding']}"
        return what, "replay batch (not handed over)" if p.get("replay") else "handed over"
    if entry.kind == "notice":
        if p.get("closed_on"):
            return (f"disconnection notice {p.get('notice_id')} closed on {p.get('closed_on')}",
                    p.get("closed_reason") or "closed")
        return (f"disconnection notice {p.get('notice_id')} served on {p.get('served_on')}",
                f"earliest disconnection {p.get('earliest_disconnection')}")
    if entry.kind == "proposal":
        return (f"disconnection order proposed for notice {p.get('notice_id')}, outstanding "
                f"{_fen(p.get('outstanding_fen'))}", f"earliest {p.get('earliest_disconnection')}")
    if entry.kind == "approval":
        return (f"batch {p.get('approval_id')} {p.get('outcome')} by {p.get('responded_by') or '-'}",
                f"{p.get('proposals')} proposals, {_fen(p.get('amount_fen'))}")
    if entry.kind == "order":
        return (f"work order {p.get('order_id')} released for notice {p.get('notice_id')}",
                f"approved by {p.get('approved_by')} ({p.get('approval_id')})")
    if entry.kind == "disconnection_event":
        return f"disconnection {p.get('event')} (notice {p.get('notice_id')})", p.get("detail", "")
    if entry.kind == "case_event":
        extra = f", instalments {p['instalments']}" if p.get("instalments") else ""
        amount = f", amount {_fen(p.get('amount_fen'))}" if p.get("amount_fen") else ""
        return (f"{p.get('event_type')} effective {p.get('effective_date')}{amount}{extra}",
                f"recorded by {p.get('recorded_by')} ({p.get('source')})")
    if entry.kind == "quarantine" and "reason" in p:  # one posted event refused
        return (f"posted event {p.get('event_id')} quarantined",
                f"{p['reason']} (posted by {p.get('recorded_by')})")
    if entry.kind == "quarantine":
        return f"{len(p.get('rows', []))} rows quarantined", "; ".join(
            f"{r['file']}:{r['line']} {r['reason']}" for r in p.get("rows", [])[:5])
    if entry.kind == "cycle":
        what = f"{p.get('event')}: {p.get('run_type')} run"
        return what, ("replay: contacts nobody" if p.get("replay") else
                      "allow_contact: live backfill" if p.get("allow_contact") else "live run")
    if entry.kind == "retention":
        if p.get("category") == "personal_data":
            return (f"personal data purged (left the extract on {p.get('left_extract_on')}, "
                    f"kept until {p.get('kept_until')})", f"retention: {p.get('rule')}")
        return (f"retention purged {p.get('purged')} {p.get('category')} "
                f"(dated on or before {p.get('cutoff')})", f"retention: {p.get('rule')}")
    if entry.kind == "receipt":
        what = (f"{p.get('channel')} receipt {p.get('status')} for {p.get('idem_key')}"
                if p.get("event") == "receipt" else f"{p.get('channel')} reply {p.get('reply')}")
        return what, (f"posted by {p.get('posted_by')}"
                      + ("; channel stopped (opt-out)" if p.get("opted_out") or p.get("opt_out") else ""))
    return entry.kind, ""


def step_of(entry: trail.Recorded) -> Step:
    what, rule = describe(entry)
    return Step(entry.seq, entry.cycle_date.isoformat() if entry.cycle_date else "", entry.kind,
                what, rule, entry.run_id, entry.task_id, entry.try_number, is_replay(entry))


def account_timeline(conn: Connection, account_id: str) -> list[Step]:
    """What happened to the account, by cycle date, then in the order it was recorded."""
    return [s for s in _steps(conn, account_id) if not s.replay]


def replay_timeline(conn: Connection, account_id: str) -> list[Step]:
    """What replays recomputed for the account (nothing of it was sent or served), by cycle
    date, run, then in the order recorded: the auditors' page shows it in its own section."""
    return sorted((s for s in _steps(conn, account_id) if s.replay),
                  key=lambda s: (s.cycle_date, s.run_id, s.seq))


def _steps(conn: Connection, account_id: str) -> list[Step]:
    steps = [step_of(e) for e in trail.entries(conn, account_id=account_id)]
    return sorted(steps, key=lambda s: (s.cycle_date, s.seq))


def cycle_summary(conn: Connection, cycle_date: date) -> dict:
    entries = trail.entries(conn, cycle_date=cycle_date)
    by_kind: dict[str, int] = {}
    stages: dict[str, int] = {}
    outcomes: dict[str, int] = {}
    runs: set[str] = set()
    labels: dict[str, str] = {}
    replayed: dict[str, int] = {}   # replay run -> its decisions (kept apart from what happened)
    for e in entries:
        by_kind[e.kind] = by_kind.get(e.kind, 0) + 1
        runs.add(e.run_id)
        if e.kind == "decision" and is_replay(e):
            replayed[e.run_id] = replayed.get(e.run_id, 0) + 1
        elif e.kind == "decision":
            stages[e.payload.get("stage")] = stages.get(e.payload.get("stage"), 0) + 1
        if e.kind == "cycle" and e.payload.get("event") == "cycle_run":
            labels[e.run_id] = (f"{e.run_id} ({e.payload.get('run_type')}"
                                f"{', replay' if e.payload.get('replay') else ''})")
        if e.kind == "message":
            key = f"{e.payload.get('channel')}:{e.payload.get('outcome')}"
            outcomes[key] = outcomes.get(key, 0) + 1
    return {"cycle_date": cycle_date.isoformat(), "entries": len(entries), "by_kind": by_kind,
            "decisions_by_stage": stages, "messages": outcomes,
            "runs": sorted(labels.get(r, r) for r in runs if r),
            "replays": {"decisions_by_run": dict(sorted(replayed.items()))}}
