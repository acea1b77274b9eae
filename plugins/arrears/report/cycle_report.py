"""cycle_report.html: what the cycle decided and did on D, next to the cycle before it.

Counts and amounts by stage, action and hold with deltas, quarantined rows (file, line, reason:
never the raw row, which holds personal data), messages by outcome (from the outbox when the
delivery step is installed), batch hashes (from the manifests), and the ageing distribution as
an embedded PNG. The same state gives the same bytes: no timestamps, a fixed PNG metadata set.
"""
from __future__ import annotations

import base64
import hashlib
import io
from datetime import date
from typing import TYPE_CHECKING

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine, inspect, text

from arrears.audit.pii import mask_text
from arrears.db.values import as_date
from arrears.model import ACTIONS, HOLDS, SEGMENTS, STAGES
from arrears.money import format_fen
from arrears.outbox_files import as_storage_path, day_folder, run_folder, write_file
from arrears.paths import TEMPLATES_DIR
from arrears.records.decided import Decided
from arrears.report import roll_rates
from arrears.report.experiment import experiment_ids, experiment_report

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from arrears.cycle.run import CycleRun

# DPD buckets of the ageing plot: (label, lowest DPD, highest DPD or None).
AGEING = (("current", None, 0), ("1-7", 1, 7), ("8-30", 8, 30), ("31-60", 31, 60),
          ("61-90", 61, 90), ("91-180", 91, 180), ("181+", 181, None))
MESSAGE_STATES = ("sent", "deferred", "failed", "permanent_failure", "queued", "sending",
                  "expired", "cancelled", "standby", "delivered", "receipts", "replies", "opt_outs")
BATCHES = ("lawyer_letters", "credit_report")


def _bucket(dpd: int) -> str:
    for label, low, high in AGEING:
        if (low is None or dpd >= low) and (high is None or dpd <= high):
            return label
    return AGEING[-1][0]


def _split(value: str) -> list[str]:
    return [v for v in (value or "").split(";") if v]


def cycle_facts(engine: Engine, cycle_date: date, decided: Decided | None = None) -> dict:
    """The day's numbers: counts and amounts (fen) per stage, action, hold, segment and DPD
    bucket, of the real decisions or ``decided``'s (a replay's own)."""
    decided = decided or Decided(cycle_date)
    zero = lambda names: {n: [0, 0] for n in names}  # noqa: E731 - [count, fen]
    facts = {"by_stage": zero(STAGES), "by_action": zero(ACTIONS), "by_hold": zero(HOLDS),
             "by_segment": zero(SEGMENTS), "ageing": zero(label for label, _, _ in AGEING),
             "accounts": 0, "outstanding": 0, "replay": False}
    with engine.connect() as conn:
        for stage, dpd, outstanding, actions, holds, replay, segment in conn.execute(text(
                "SELECT stage, dpd, outstanding_fen, actions, holds, replay, segment"
                f" FROM {decided.table('decisions')} d WHERE cycle_date = :d"), decided.params()):
            facts["accounts"] += 1
            facts["outstanding"] += outstanding
            facts["replay"] = facts["replay"] or bool(replay)
            for table, names in (("by_stage", [stage]), ("by_action", _split(actions)),
                                 ("by_hold", _split(holds)), ("by_segment", [segment]),
                                 ("ageing", [_bucket(dpd)])):
                for name in names:
                    cell = facts[table].setdefault(name, [0, 0])
                    cell[0] += 1
                    cell[1] += outstanding
    return facts


def previous_cycle(engine: Engine, cycle_date: date) -> date | None:
    with engine.connect() as conn:
        value = conn.execute(text("SELECT MAX(cycle_date) FROM decisions WHERE cycle_date < :d"),
                             {"d": cycle_date}).scalar()
    return as_date(value)


def quarantined(engine: Engine, cycle_date: date) -> list[tuple[str, int, str]]:
    with engine.connect() as conn:
        # A reason may quote the bad value: mask anything that looks like an email or phone.
        return [(f, n, mask_text(r)) for f, n, r in conn.execute(text(
            "SELECT file, line, reason FROM quarantine WHERE cycle_date = :d ORDER BY file, line"),
            {"d": cycle_date})]


def messages(engine: Engine, cycle_date: date) -> dict[str, dict[str, int]] | None:
    """channel -> status -> count for D's messages; None without the delivery step's outbox."""
    with engine.connect() as conn:
        if "outbox" not in inspect(conn).get_table_names():
            return None
        out: dict[str, dict[str, int]] = {}
        for channel, status, n in conn.execute(text(
                "SELECT channel, status, COUNT(*) FROM outbox WHERE cycle_date = :d"
                " GROUP BY channel, status"), {"d": cycle_date}):
            out.setdefault(channel, {s: 0 for s in MESSAGE_STATES})[status] = n
        # What came back (CONTRACT §7): receipts and replies received on D, opt-outs by reply.
        from arrears.delivery.receipts import receipt_counts
        for channel, counts in receipt_counts(conn, cycle_date).items():
            out.setdefault(channel, {s: 0 for s in MESSAGE_STATES}).update(counts)
    return dict(sorted(out.items()))


def batch_hashes(folder, replay: bool = False) -> list[dict]:
    """The manifests of the batches in the run's folder (a replay's own, under replays/)."""
    rows = []
    folder = as_storage_path(folder)
    for batch in BATCHES:
        manifest = folder / batch / "manifest.csv"
        if manifest.is_file():
            data = manifest.read_bytes()
            records = max(0, len(data.decode("utf-8-sig").strip().splitlines()) - 1)
            rows.append({"batch": batch + (" (replay)" if replay else ""),
                         "records": records, "sha256": hashlib.sha256(data).hexdigest()})
    return rows


def ageing_png(facts: dict, cycle_date: date) -> bytes:
    """Accounts and outstanding amount per DPD bucket; deterministic bytes for the same facts."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labels = [label for label, _, _ in AGEING]
    counts = [facts["ageing"][label][0] for label in labels]
    amounts = [facts["ageing"][label][1] / 100 for label in labels]
    fig = Figure(figsize=(8, 3.2), dpi=100)
    left, right = fig.subplots(1, 2)
    left.bar(labels, counts, color="#4c72b0")
    left.set_title("Accounts by days past due")
    right.bar(labels, amounts, color="#dd8452")
    right.set_title("Outstanding (CNY) by days past due")
    for axis in (left, right):
        axis.tick_params(axis="x", labelrotation=30, labelsize=8)
        axis.set_xlabel("DPD")
    fig.suptitle(f"Arrears ageing on {cycle_date.isoformat()}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _rows(today: dict, before: dict | None, names) -> list[dict]:
    rows = []
    for name in names:
        count, fen = today.get(name, [0, 0])
        prev_count, prev_fen = (before or {}).get(name, [0, 0])
        rows.append({"name": name, "count": count, "amount": format_fen(fen),
                     "delta_count": f"{count - prev_count:+d}" if before is not None else "",
                     "delta_amount": (("+" if fen >= prev_fen else "") + format_fen(fen - prev_fen))
                     if before is not None else ""})
    return rows


def open_bureau_objections(engine: Engine, cycle_date: date) -> list[dict]:
    """Objections open on D with the days left of the 20 to answer them (CONTRACT §8)."""
    from arrears.batches.objections import open_objections
    from arrears.policy import load_policy
    with engine.connect() as conn:
        found = open_objections(conn, cycle_date, load_policy())
    return [{"account_id": o.account_id, "raised_on": o.objection.raised_on.isoformat(),
             "day": o.objection.day, "days_left": o.objection.days_left,
             "alert": o.objection.alert} for o in found]


def render(engine: Engine, folder, cycle_date: date, decided: Decided | None = None
           ) -> tuple[str, dict]:
    """The report of D; ``folder`` is the run's folder, whose batch manifests it lists. A
    replay's (``decided``) is of its own decisions and batches, no messages (it sent none),
    REPLAY at the top."""
    decided = decided or Decided(cycle_date)
    facts = cycle_facts(engine, cycle_date, decided)
    prev_date = previous_cycle(engine, cycle_date)
    prev = cycle_facts(engine, prev_date) if prev_date else None
    quarantine = quarantined(engine, cycle_date)
    msgs = {} if decided.replay else messages(engine, cycle_date)
    batches = batch_hashes(folder, decided.replay)
    png = base64.b64encode(ageing_png(facts, cycle_date)).decode("ascii")
    rolls = roll_rates.month_to_date(engine, cycle_date)
    experiments = [] if decided.replay else [  # the arms' read-out is of the real record
        experiment_report(engine, e, cycle_date) for e in experiment_ids(engine, cycle_date)]
    rolls_png = base64.b64encode(roll_rates.roll_rates_png(
        rolls, f"Roll rates, {cycle_date:%Y-%m-01} to {cycle_date}")).decode("ascii")
    objections = open_bureau_objections(engine, cycle_date)
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR / "report"),
                      autoescape=select_autoescape(["html"]), keep_trailing_newline=True)
    sections = [(title, _rows(facts[key], prev[key] if prev else None, names))
                for title, key, names in (("Stage", "by_stage", STAGES),
                                          ("Action", "by_action", ACTIONS),
                                          ("Hold", "by_hold", HOLDS),
                                          ("Segment", "by_segment", SEGMENTS))]
    html = env.get_template("cycle_report.html").render(
        cycle_date=cycle_date.isoformat(), previous=prev_date.isoformat() if prev_date else None,
        accounts=facts["accounts"], outstanding=format_fen(facts["outstanding"]),
        delta_accounts=f"{facts['accounts'] - prev['accounts']:+d}" if prev else "",
        replay=decided.replay or facts["replay"], replay_run=decided.replay_run,
        sections=sections, quarantine=quarantine, messages=msgs,
        message_states=MESSAGE_STATES, batches=batches, ageing_png=png,
        roll_rates=rolls, roll_outcomes=roll_rates.OUTCOMES, roll_rates_png=rolls_png,
        month_start=cycle_date.replace(day=1).isoformat(), experiments=experiments,
        objections=objections)
    summary = {"accounts": facts["accounts"], "quarantined": len(quarantine),
               "previous_cycle": prev_date.isoformat() if prev_date else None,
               "messages": {c: {s: n for s, n in v.items() if n} for c, v in (msgs or {}).items()},
               "batches": {b["batch"]: b["sha256"] for b in batches},
               "open_bureau_objections": objections}
    return html, summary


def write_cycle_report(engine: Engine, outbox, cycle_date: date, run: CycleRun | None = None
                       ) -> tuple[ObjectStoragePath, dict]:
    """``cycle_report.html`` in the run's folder (``run`` None: the real run's, ``<outbox>/<D>/``)."""
    folder = run_folder(outbox, run) if run is not None else day_folder(outbox, cycle_date)
    html, summary = render(engine, folder, cycle_date,
                           Decided.of(run) if run is not None else Decided(cycle_date))
    path = write_file(folder / "cycle_report.html", html.encode("utf-8"))
    return path, summary
