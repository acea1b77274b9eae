"""Send what the outbox holds: inside the contact window, each message at most once.

Per chunk of messages: claim the rows (one conditional UPDATE in one durable transaction, so two
dispatchers never both get a row), then per message send and record the answer at once. A row
left ``sending`` by a crashed attempt is claimed again only after its lease ran out, then resent
under the same key (files and the SMS gateway dedupe on it; an SMTP resend carries the same
Message-ID: see README.md (Reminders and notices)).

The per-message record is committed before the next message is sent, as before: that is what
keeps an SMTP resend after a killed worker to at most the one message whose answer was not yet
recorded (SMTP has no idempotency key; marking a whole chunk at its end would widen that to the
chunk). So the record is made cheap instead (``_Recorder``): one autocommitted UPDATE on a
connection held for the chunk, on PostgreSQL without waiting for the WAL flush
(``synchronous_commit = off`` on that connection while the chunk lasts) and written while the
next message's first SMTP commands go out. The server has the row when the statement returns, so
a killed worker loses nothing it was told; only a crash of the database server itself could lose
the last fraction of a second of records, and the last record of each chunk is committed durably
(which flushes the ones before it).

A channel whose transport allows several sessions (SMTP: the connection's ``sessions``) and that
has many messages waiting sends its chunks from that many processes at once, each chunk claimed,
sent over its own connection and recorded by the process sending it, exactly as above: the claim
keeps a message to one process, and each connection leaves at most one message of unknown fate.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time as clock_time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, wait
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from multiprocessing import get_context
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.exc import DBAPIError

from arrears.db import make_engine
from arrears.delivery.outbox import Attempt, utc_stamp
from arrears.delivery.transports import (OutboxMessage, Outage, PermanentFailure,
                                         TransientFailure)
from arrears.processes import start_pool

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
MESSAGES_PER_CONNECTION = 200   # messages per claim and SMTP connection / per progress line
MAX_ATTEMPTS = 5                    # then a failing message is given up as permanent_failure
LEASE = timedelta(minutes=15)       # a `sending` row older than this belongs to a dead attempt
# A channel with fewer messages waiting uses one session: starting a process costs about a second.
SESSIONS_FROM = 1000


def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


def in_window(moment: datetime, tz: str, window: tuple[time, time]) -> bool:
    """Is the wall-clock moment inside the contact window, in the utility's time zone?"""
    local = moment.astimezone(ZoneInfo(tz)).time()
    start, end = window
    return start <= local <= end if end == time.max else start <= local < end


# A later normal (non-replay) decision for the account supersedes an unsent message: it counted
# this message in its contact history, and sending both would put two days' messages side by side.
_SUPERSEDED = ("EXISTS (SELECT 1 FROM decisions s WHERE s.account_id = outbox.account_id"
               " AND s.cycle_date > outbox.cycle_date AND s.replay = 0)")
_CLAIM = text(
    "UPDATE outbox SET status = 'sending', attempts = attempts + 1, claimed_at = :now,"
    " run_id = :run_id, task_id = :task_id, try_number = :try_number"
    " WHERE idem_key IN :keys AND (status IN ('queued', 'deferred', 'failed')"
    "   OR (status = 'sending' AND claimed_at < :stale))"
    f" AND NOT {_SUPERSEDED}").bindparams(bindparam("keys", expanding=True))
# The rows this claim got (same stamp and attempt), in key order.
_CLAIMED = text(
    "SELECT idem_key, cycle_date, account_id, channel, address, subject, body_text, body_html,"
    " message_id, queued_at, attempts FROM outbox WHERE idem_key IN :keys AND status = 'sending'"
    " AND claimed_at = :now AND run_id = :run_id AND task_id = :task_id"
    " AND try_number = :try_number ORDER BY idem_key").bindparams(bindparam("keys", expanding=True))
# Claimed but never tried (an outage stopped the chunk): back to the pile, the attempt not counted.
_RELEASE = text(
    "UPDATE outbox SET status = CASE WHEN COALESCE(last_error, '') = '' THEN 'queued'"
    " ELSE 'failed' END, attempts = attempts - 1"
    " WHERE idem_key IN :keys AND status = 'sending' AND claimed_at = :now"
    ).bindparams(bindparam("keys", expanding=True))
_MARK = text(
    "UPDATE outbox SET status = :status, last_error = :error, gateway_answer = :answer,"
    " sent_at = :sent_at WHERE idem_key = :k AND status = 'sending' AND claimed_at = :now")
# A permanent failure puts the next channel of the message's slot in the queue, the same day
# (CONTRACT §7); its own permanent failure puts the one after it, and so on.
_FALL_BACK = text(
    "UPDATE outbox SET status = 'queued', queued_at = :now, last_error = :why"
    " WHERE fallback_of = :k AND status = 'standby'")


@dataclass
class DispatchResult:
    sent: int = 0
    failed: int = 0
    permanent_failure: int = 0
    deferred: int = 0
    expired: int = 0
    skipped: int = 0             # claimed meanwhile by another dispatcher
    fell_back: int = 0           # later channels of a slot queued after a permanent failure
    outage: str = ""             # the first outage met; the rest of that channel waits
    in_window: bool = True
    dates: list[str] = field(default_factory=list)

    COUNTS = ("sent", "failed", "permanent_failure", "skipped", "fell_back")

    def add(self, other: DispatchResult) -> None:
        """Count in what another process sent for this dispatch."""
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def retry_wanted(self) -> bool:
        return bool(self.failed or self.outage)

    def as_dict(self) -> dict:
        return {**self.__dict__, "retry_wanted": self.retry_wanted}


def _dates_clause(dates: Iterable[date] | None) -> tuple[str, dict]:
    if dates is None:
        return "", {}
    names = {f"d{i}": d for i, d in enumerate(dates)}
    if not names:
        return " AND 1 = 0", {}
    return f" AND cycle_date IN ({', '.join(':' + n for n in names)})", names


def expire_superseded(engine: Engine, dates: Iterable[date] | None = None) -> int:
    where, params = _dates_clause(dates)
    with engine.begin() as conn:
        return conn.execute(text(
            "UPDATE outbox SET status = 'expired', last_error = 'superseded: a later cycle date"
            " decided this account before the message could go out'"
            f" WHERE status IN ('queued', 'deferred', 'failed') AND {_SUPERSEDED}{where}"),
            params).rowcount


def dispatch(engine: Engine, transports: dict, *, tz: str, window: tuple[time, time],
             attempt: Attempt, dates: Iterable[date] | None = None, clock: Clock = wall_clock,
             chunk: int = MESSAGES_PER_CONNECTION, max_attempts: int = MAX_ATTEMPTS,
             lease: timedelta = LEASE, sessions_from: int = SESSIONS_FROM) -> DispatchResult:
    """Send the unsent messages of ``dates`` (all dates when None) through ``transports``
    (channel -> transport). Outside the contact window they are marked ``deferred``. A channel
    with at least ``sessions_from`` messages waiting uses its transport's ``sessions``."""
    dates = None if dates is None else sorted(set(dates))
    result = DispatchResult(dates=[d.isoformat() for d in dates or ()])
    result.expired = expire_superseded(engine, dates)
    where, params = _dates_clause(dates)
    now = clock()
    only = ""
    if not in_window(now, tz, window):
        # Outside the window only channels that reach nobody at once (post) go out.
        free = _unbound_channels(transports)
        names = ", ".join(f"'{c}'" for c in free) or "NULL"
        with engine.begin() as conn:
            conn.execute(text("UPDATE outbox SET status = 'deferred' WHERE status IN"
                              f" ('queued', 'failed') AND channel NOT IN ({names})" + where), params)
            result.deferred = conn.execute(text(
                "SELECT COUNT(*) FROM outbox WHERE status = 'deferred'" + where), params).scalar_one()
        result.in_window = False
        log.info("outside the contact window %s-%s (%s): %d messages deferred",
                 window[0], window[1], tz, result.deferred)
        if not free:
            return result
        only = f" AND channel IN ({names})"
    stale = utc_stamp(now - lease)
    outages: list[str] = []
    pick = ("(status IN ('queued', 'deferred', 'failed')"
            " OR (status = 'sending' AND claimed_at < :stale))")
    for _ in range(len(transports) + 1):
        with engine.connect() as conn:
            todo = conn.execute(text(
                f"SELECT channel, idem_key FROM outbox WHERE {pick}" + only + where),
                {**params, "stale": stale}).all()
        # Then again for the fallbacks the permanent failures of this pass queued, only them.
        pick = "status = 'queued' AND fallback_of <> '' AND :stale = :stale"
        todo = [(c, k) for c, k in todo if not any(o.startswith(f"{c}: ") for o in outages)]
        if not todo:
            break
        todo.sort()
        fell_back = result.fell_back
        _send_channels(engine, transports, todo, attempt, clock, stale, max_attempts, chunk,
                       result, outages, sessions_from)
        if result.fell_back == fell_back:
            break
    result.outage = "; ".join(outages)
    return result


def _unbound_channels(transports: dict) -> list[str]:
    """Channels sent outside the contact window too (CONTRACT §7: calls and messages wait)."""
    from arrears.channels.registry import registry
    channels = registry()
    return [c for c in sorted(transports) if c in channels and not channels[c].window_bound]


def _send_channels(engine, transports, todo, attempt, clock, stale, max_attempts, chunk, result,
                   outages, sessions_from) -> None:
    for channel in sorted({c for c, _ in todo}):
        keys = [k for c, k in todo if c == channel]
        transport, done, outage = transports[channel], 0, ""
        chunks = [keys[start:start + chunk] for start in range(0, len(keys), chunk)]
        sessions = min(getattr(transport, "sessions", 1), len(chunks))
        if len(keys) < sessions_from or not _shared(engine):
            sessions = 1
        stop = get_context("spawn").Event() if sessions > 1 else None
        pool = stop and start_pool(sessions, _start_session, (engine.url, os.getpid(), stop),
                                   f"{transport.name} sessions")
        if pool:
            log.info("%s: %d messages over %d sessions at once", transport.name, len(keys), sessions)
            handled = _chunks_in_sessions(pool, stop, sessions, transport, chunks, attempt,
                                          _Shifted(clock() - wall_clock()), stale, max_attempts,
                                          result)
        else:
            handled = (_send_chunk(engine, transport, part, attempt, clock, stale, max_attempts,
                                   result) for part in chunks)
        with closing(handled):  # after an outage: the other sessions stop, their rows released
            for tried, outage in handled:
                done += tried
                log.info("%s: %d/%d messages handled (all channels so far: sent %d, failed %d, "
                         "permanent %d)", transport.name, done, len(keys), result.sent,
                         result.failed, result.permanent_failure)
                if outage:
                    log.warning("%s: stopped after an outage, %d messages wait for the next"
                                " attempt: %s", transport.name, len(keys) - done, outage)
                    outages.append(f"{channel}: {outage}")
                    break


def _shared(engine: Engine) -> bool:
    """Can other processes open this database? (Not an in-memory SQLite one.)"""
    return engine.dialect.name != "sqlite" or engine.url.database not in (None, "", ":memory:")


class _Shifted:
    """The dispatch's clock in a session process (a test's frozen clock is not picklable): the
    wall clock moved by the offset the dispatch's clock had from it when the chunks went out."""

    def __init__(self, offset: timedelta):
        self.offset = offset

    def __call__(self) -> datetime:
        return wall_clock() + self.offset


def _chunks_in_sessions(pool, stop, sessions: int, transport, chunks, attempt, clock, stale,
                        max_attempts, result) -> Iterator[tuple[int, str]]:
    """Each chunk sent by one of the session processes, one chunk each at a time; yields as
    the chunks finish. Closed early (an outage) or failing (a session process killed, the task
    stopped), it stops every session after the message in flight, whose answer is recorded."""
    waiting, running = list(reversed(chunks)), set()
    try:
        while waiting or running:
            while waiting and len(running) < sessions:
                running.add(pool.submit(_send_chunk_in_session, transport, waiting.pop(), attempt,
                                        clock, stale, max_attempts))
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                tried, outage, counts = future.result()
                result.add(counts)
                yield tried, outage
    except BaseException:
        stop.set()
        for future in running:
            try:
                result.add(future.result()[2])
            except Exception as exc:  # noqa: BLE001 - the first failure is the one raised
                log.warning("%s: a session ended with %r", transport.name, exc)
        raise
    finally:
        pool.shutdown()


# In a session process: its engine, the dispatching process, the dispatch's stop event, and
# whether it is sending a chunk or waiting for the next.
_session: dict = {}


def _start_session(url, parent: int, stop) -> None:
    """A session process's start. SIGTERM, or its task gone (killed: checked twice a second),
    ends a waiting session at once; a sending one first finishes the message in flight and
    records its answer, then releases the rest of its chunk (``_stop_requested``)."""
    _session.update(engine=make_engine(url.render_as_string(hide_password=False)), parent=parent,
                    stop=stop, terminated=False, sending=False)

    def end_or_stop(*_) -> None:
        _session["terminated"] = True
        if not _session["sending"]:
            os._exit(0)

    def watch_the_task() -> None:
        while os.getppid() == parent:
            clock_time.sleep(0.5)
        end_or_stop()

    signal.signal(signal.SIGTERM, end_or_stop)
    threading.Thread(target=watch_the_task, daemon=True).start()


def _stop_requested() -> bool:
    """In a session process: the dispatch stopped its sessions, SIGTERM came, or the
    dispatching task is gone (killed). Never in the dispatching process itself."""
    return bool(_session) and (_session["terminated"] or _session["stop"].is_set()
                               or os.getppid() != _session["parent"])


def _send_chunk_in_session(transport, keys, attempt, clock, stale, max_attempts):
    counts = DispatchResult()
    _session["sending"] = True
    try:
        tried, outage = _send_chunk(_session["engine"], transport, keys, attempt, clock, stale,
                                    max_attempts, counts)
    finally:
        _session["sending"] = False
    if _session["terminated"]:
        os._exit(0)   # nobody waits for this chunk's counts: its answers are recorded
    return tried, outage, counts


def _send_chunk(engine: Engine, transport, keys: list[str], attempt: Attempt, clock: Clock,
                stale: str, max_attempts: int, result: DispatchResult) -> tuple[int, str]:
    """Send one chunk; returns how many were handled and the outage that stopped it, if any."""
    tried = 0
    by_date: dict[str, list[str]] = {}
    for key in keys:
        by_date.setdefault(key.split(":", 1)[0], []).append(key)
    for day, day_keys in sorted(by_date.items()):
        now = utc_stamp(clock())
        claim = {"keys": day_keys, "now": now, "stale": stale, **attempt.__dict__}
        with engine.begin() as conn:  # durable: nothing is sent before its claim is on disk
            conn.execute(_CLAIM, claim)
            rows = conn.execute(_CLAIMED, claim).all()
        tried += len(day_keys) - len(rows)
        result.skipped += len(day_keys) - len(rows)   # claimed meanwhile by another dispatcher
        untried = 0  # rows[untried:] were claimed and never handed to the transport
        try:
            with _Recorder(engine) as recorder, transport.session(day) as send:
                for n, row in enumerate(rows):
                    if _stop_requested():  # the rest is released below
                        return tried, f"session stopped after {n} of {len(rows)} claimed messages"
                    tried, untried = tried + 1, n + 1
                    outage = _send_one(recorder, send, row, now, n == len(rows) - 1,
                                       max_attempts, clock, result)
                    if outage:
                        return tried, outage
        finally:  # an outage, or the task stopped (not killed): the rest need not wait a lease
            if untried < len(rows):
                with engine.begin() as conn:
                    conn.execute(_RELEASE, {"keys": [r.idem_key for r in rows[untried:]], "now": now})
    return tried, ""


class _Recorder:
    """Records a chunk's answers, each committed before the next message can be accepted.

    One connection held for the chunk (no pool check-out per message), each record one
    autocommitted statement (one round trip) through the driver's own cursor (SQLAlchemy's
    execution machinery cost twice the statement itself), on PostgreSQL without waiting for
    the WAL flush (``synchronous_commit = off`` on that connection while the chunk lasts; see
    the module's docstring).
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self._conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._lazy = self._conn.dialect.name == "postgresql"
        if self._lazy:
            self._conn.exec_driver_sql("SET synchronous_commit = off")
        compiled = _MARK.compile(dialect=self._conn.dialect)
        self._mark_sql, self._order = str(compiled), compiled.positiontup
        self._cursor = self._conn.connection.dbapi_connection.cursor()

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._cursor.close()
            if self._lazy:
                self._conn.exec_driver_sql("RESET synchronous_commit")
        except (DBAPIError, self._conn.dialect.loaded_dbapi.Error):
            self._conn.invalidate()  # never back to the pool with the setting on it
        finally:
            self._conn.close()

    def record(self, mark: dict, durable: bool, result: DispatchResult) -> None:
        """Record one answer, committed before the next message is handed to the transport."""
        if mark["status"] == "permanent_failure":
            # The record and the slot's next channel together, in one durable transaction.
            with self.engine.begin() as conn:
                if conn.execute(_MARK, mark).rowcount:
                    result.fell_back += conn.execute(_FALL_BACK, {
                        "k": mark["k"], "now": mark["now"],
                        "why": f"fallback: {mark['k']} failed permanently"}).rowcount
            return
        flush = durable and self._lazy
        if flush:  # the chunk's last record waits for the flush, and so covers the ones before it
            self._cursor.execute("SET synchronous_commit = on")
        self._cursor.execute(self._mark_sql,
                             mark if self._order is None else [mark[n] for n in self._order])
        if flush:
            self._cursor.execute("SET synchronous_commit = off")


def _send_one(recorder: _Recorder, send, row, now: str, durable: bool,
              max_attempts: int, clock: Clock, result: DispatchResult) -> str:
    """Send one claimed message and record the answer; returns the outage it met, if any."""
    message = OutboxMessage(*[str(v) for v in row[:10]])
    status, error, answer, sent_at, outage = "sent", "", "", None, ""
    try:
        answer = send(message)
        sent_at = utc_stamp(clock())
        result.sent += 1
    except PermanentFailure as exc:
        status, error = "permanent_failure", str(exc)
        result.permanent_failure += 1
    except (TransientFailure, Outage) as exc:
        error = str(exc)
        if row.attempts >= max_attempts:
            status, error = "permanent_failure", f"gave up after {row.attempts} attempts: {exc}"
            result.permanent_failure += 1
        else:
            status = "failed"
            result.failed += 1
        outage = str(exc) if isinstance(exc, Outage) else ""
    recorder.record({"k": row.idem_key, "status": status, "error": error[:1000], "answer": answer,
                     "sent_at": sent_at, "now": now}, durable or bool(outage), result)
    return outage
