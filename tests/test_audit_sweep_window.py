"""The audit sweep reads a recent window before the last checkpoint, not all history: a late
side effect inside the window (an order released days after its batch, recorded after that
day's audit) is still swept; a record older than the window is not read. Both databases."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import text

from arrears.audit import checkpoint, sweep, trail
from arrears.audit.trail import Entry
from arrears.cycle.run import CycleRun

D = date(2026, 11, 30)


def _release(conn, batch: date, released: date, tag: str) -> None:
    conn.execute(text(
        "INSERT INTO disconnection_approvals (approval_id, cycle_date, outcome, responded_by,"
        " responded_at, proposals, amount_fen, run_id, task_id, try_number) VALUES"
        " (:a, :d, 'approved', 'supervisor1', '', 1, 50000, 'r', 'approve', 1)"),
        {"a": f"AP-{tag}", "d": batch})
    conn.execute(text(
        "INSERT INTO disconnection_orders (order_id, notice_id, account_id, cycle_date, released_on,"
        " approved_by, approval_id, run_id, task_id, try_number) VALUES"
        " (:o, :n, 'A1', :d, :r, 'supervisor1', :a, 'r', 'release', 1)"),
        {"o": f"WO-{tag}", "n": f"DN-{tag}", "d": batch, "r": released, "a": f"AP-{tag}"})


def _keys(engine, tmp_path) -> set[str]:
    with engine.connect() as conn:
        found, sources = sweep.collect(conn, CycleRun(D, run_id="run-D"), tmp_path)
    return {e.key for e in found if e.kind in ("order", "approval")}, sources


def test_late_effect_inside_the_window_is_swept_and_old_history_is_not_read(engine, tmp_path):
    # Yesterday's audit ran and checkpointed the chain ...
    trail.record(engine, [Entry(key="cycle/x", kind="cycle", payload={"event": "x"})])
    with engine.begin() as conn:
        checkpoint.write(conn, tmp_path / "outbox", D - timedelta(days=1),
                         checkpoint.verify_daily(conn))
    # ... then the release DAG released an order for a batch of ten days ago (late), and
    # there is an order of two months ago in the history.
    with engine.begin() as conn:
        _release(conn, D - timedelta(days=10), D - timedelta(days=1), "late")
        _release(conn, D - timedelta(days=60), D - timedelta(days=59), "old")
    keys, sources = _keys(engine, tmp_path)
    assert keys == {"order/WO-late", "approval/AP-late/approved"}
    since = D - timedelta(days=1 + sweep.SWEEP_WINDOW_DAYS)
    assert sources["disconnection"] == f"swept from {since}"


def test_without_a_checkpoint_the_sweep_catches_up_on_everything(engine, tmp_path):
    with engine.begin() as conn:
        _release(conn, D - timedelta(days=10), D - timedelta(days=1), "late")
        _release(conn, D - timedelta(days=400), D - timedelta(days=399), "old")
    keys, sources = _keys(engine, tmp_path)
    assert keys == {"order/WO-late", "approval/AP-late/approved", "order/WO-old",
                    "approval/AP-old/approved"}
    assert sources["disconnection"] == "swept"
