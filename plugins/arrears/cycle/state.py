"""Per-account decision state: what the policy needs of the earlier real decisions, one row per
account (``decision_state``, migration 0032), so that a cycle's history read costs the same
after a year of decisions as after a week (include/sql/cycle/history.sql reads every letter,
report and notice an account ever had).

One row is enough because of what the policy reads of those decisions (arrears.policy.decide):
the latest decision's stage spell; the latest lawyer letter (the repeat gap is from ``max``);
whether a credit report fell in D's calendar month (every report is before D, so if any did,
the latest did); whether a notice was decided in the current spell before D (``entered <= d
< D``: if any was, the latest was). tests/test_decision_state.py holds the policy to that.

The state holds the real decisions of every date up to W (``decision_state_through``):
- a real decide of D first brings it to D-1 (:func:`bring_up_to`): it folds in the decisions of
  the dates in (W, D-1] (a day's rows in the daily run, a few days' in a catch-up), or rebuilds
  it from every decision when W is NULL, and reads it instead of history.sql;
- a decide whose D-1 is not W reads the full history as before: a replay or a rerun of an
  earlier date (D-1 < W), a replay of a date the state has not reached (replays never write);
- a real decide that writes a date up to W sets W to NULL in the same transaction
  (:func:`after_writing`): the next real decide rebuilds.

Concurrency (the mapped decide parts run at once, and a fold must never see half a date's
decisions nor change the state under a reader): on PostgreSQL a fold holds advisory lock 4245
exclusively and every decide holds it shared from before it looks at W until its decisions
commit; on SQLite the database write lock does both (a fold's first statement writes, and a
decide's writer has deleted its old rows, so holds the lock, before it looks at W).

Nothing personal: account ids, stages and dates, which the decisions keep anyway.
"""
from __future__ import annotations

import logging
from datetime import date

from sqlalchemy import Connection, Engine, text

from arrears.db import sql
from arrears.db.values import as_date

log = logging.getLogger(__name__)
LOCK = 4245  # PostgreSQL advisory lock key (4242: migrations, 4244: releases)
ANALYZE_FROM = 10_000  # rows a fold writes before it refreshes the statistics (else autovacuum)


def through(conn: Connection) -> date | None:
    """W: the last date whose real decisions the state holds (None: to be rebuilt)."""
    row = conn.execute(text("SELECT through FROM decision_state_through WHERE id = 1")).first()
    return as_date(row[0]) if row is not None and row[0] is not None else None


def bring_up_to(engine: Engine, day: date) -> str:
    """Make the state hold the real decisions of every date up to ``day`` (D-1 of a real
    decide). Returns what it did: ``current`` (nothing to do), ``folded``, ``rebuilt``, or
    ``ahead`` (W is after ``day``: left alone, that decide reads the full history)."""
    with engine.connect() as conn:
        seen = through(conn)
    if seen is not None and seen >= day:  # the daily case once a part or plan has folded
        return "current" if seen == day else "ahead"
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK})
            # Its cost estimate crosses jit_above_cost on a big book: compiling took 0.1-0.2 s
            # of a fold that runs in 0.2 s without it.
            conn.execute(text("SET LOCAL jit = off"))
        else:  # a write first: takes the database write lock before W is read
            conn.execute(text("UPDATE decision_state_through SET through = through WHERE id = 1"))
        now = through(conn)
        if now is not None and now >= day:  # another part did it while this one waited
            return "current" if now == day else "ahead"
        if now is None:
            conn.execute(text("DELETE FROM decision_state"))
        written = conn.execute(sql("cycle/fold_decision_state.sql", conn.dialect.name),
                               {"after": now or date.min, "through": day,
                                "one_date": int(now is not None and (day - now).days == 1)}).rowcount
        conn.execute(text(
            "INSERT INTO decision_state_through (id, through) VALUES (1, :t)"
            " ON CONFLICT (id) DO UPDATE SET through = excluded.through"), {"t": day})
        if conn.dialect.name == "postgresql" and (now is None or written >= ANALYZE_FROM):
            # The read plans on it at once: planned on an empty table's statistics, it took a
            # nested loop and a sort on disk (1.8x the time at 20 k accounts).
            conn.execute(text("ANALYZE decision_state"))
    log.info("decision state %s through %s", "rebuilt" if now is None else f"folded {now} ->", day)
    return "rebuilt" if now is None else "folded"


def hold(conn: Connection) -> None:
    """Keep folds out until ``conn``'s transaction ends (a decide's writer, before it looks at W).
    On SQLite the writer's first DELETE takes the write lock, which does the same."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": LOCK})


def after_writing(conn: Connection, day: date) -> None:
    """A real decide wrote ``day``'s decisions: if the state had taken that date in, it no longer
    says what the decisions say; rebuilt by the next real decide."""
    stale = conn.execute(text("UPDATE decision_state_through SET through = NULL"
                              " WHERE id = 1 AND through >= :d"), {"d": day}).rowcount
    if stale:
        log.warning("decisions of %s rewritten after the decision state took them in: it is "
                    "rebuilt from the decisions by the next real decide", day)
