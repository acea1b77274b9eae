"""Personal data out of the task logs: names, phone numbers, emails and addresses.

Airflow 3 hands every log event of a task process (stdlib ``logging`` records and structlog
events, including the task runner's own "Task failed with exception" traceback) to the supervisor,
which runs Airflow's secrets masker over it before it reaches the log file. That masker is no
place for a day's extract: it recompiles one big regex per value added (2,000 values took 131 s)
and runs it over every line. So the package masks in the task process itself, before anything
leaves it, with a matcher whose start-up reads one row, whatever the extract's size:

* :class:`KnownValues` holds D's personal data as sorted 64-bit digests and the lengths the
  values come in; a line costs one rolling hash and one binary search per (position, length),
  so its cost grows with the line, not with the extract. The ingest task builds the digests once
  per delivery (:func:`prepare`, table ``pii_digests``); a task reads them in one query;
* :func:`structlog_processor` (first in the task process's structlog chain, exception messages
  included), :class:`PiiFilter` (on the root logger's handlers, for stdlib records) and
  :class:`MaskingStream` (around the task's ``sys.stdout``/``sys.stderr``, for ``print``) mask
  known values and anything that looks like an email or a phone number;
* Airflow's own masker gets none of these values (it also ignores values under 5 characters,
  and most Chinese names are 2-3).

The package installs all three for every task of an ``arrears_*`` DAG through the plugin's task
listener (plugins/arrears_plugin.py), so no task has to remember to. The digests are read once per
process and extract date (:func:`protect_task_logs` keeps them), so a ``dag.test()`` run of many
tasks in one process reads them once.
"""
from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Iterator
from datetime import date
from itertools import chain

import numpy as np
from sqlalchemy import Engine, text

MASK = "***"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# CN mobiles (11 digits starting 1), with or without +86, and other E.164 numbers.
PHONE = re.compile(r"(?<![\w-])(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)|\+\d{8,15}(?!\d)")
MIN_LENGTH = 2  # shorter values (e.g. a one-letter name) would mask half the log


_BASE = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)
_LENGTH_SALT = 0xC2B2AE3D27D4EB4F  # a value's length is mixed into its digest


def _powers(base: int, size: int) -> np.ndarray:
    """base**k modulo 2**64 for k < size (uint64 arithmetic wraps: that is the modulus)."""
    out = np.full(max(size, 1), base, dtype=np.uint64)
    out[0] = 1
    return np.cumprod(out, dtype=np.uint64)


class _Powers:
    """B**k and B**-k, grown to the longest text seen."""

    def __init__(self) -> None:
        self.up, self.down = _powers(_BASE, 1024), _powers(_BASE_INVERSE, 1024)

    def upto(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if size >= len(self.up):
            grown = max(size + 1, 2 * len(self.up))
            self.up, self.down = _powers(_BASE, grown), _powers(_BASE_INVERSE, grown)
        return self.up, self.down


_POWERS = _Powers()


def _prefix(text: str, powers: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """P with P[k] = sum(c[j] * B**(k-1-j) for j < k) over the text's code points, so that the
    digest of text[i:i+n] is P[i+n] - P[i] * B**n: every substring's digest in a few array
    operations (a polynomial rolling hash modulo 2**64)."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint64)
    up, down = powers
    size = len(codes)
    prefix = np.zeros(size + 1, dtype=np.uint64)
    prefix[1:] = up[:size] * np.cumsum(codes * down[:size], dtype=np.uint64)
    return prefix


def _salted(digests: np.ndarray, lengths) -> np.ndarray:
    return digests ^ (np.asarray(lengths, dtype=np.uint64) * np.uint64(_LENGTH_SALT))


def digests_of(values: list[str]) -> np.ndarray:
    """The sorted, distinct digests of the values (built in chunks: bounded memory)."""
    parts = []
    for i in range(0, len(values), 50_000):
        chunk = values[i:i + 50_000]
        lengths = np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk))
        ends = np.cumsum(lengths)
        total = int(ends[-1]) if len(ends) else 0
        up = _powers(_BASE, total + 1)
        prefix = _prefix("".join(chunk), (up, _powers(_BASE_INVERSE, total + 1)))
        parts.append(_salted(prefix[ends] - prefix[ends - lengths] * up[lengths], lengths))
    return _sorted_distinct(np.concatenate(parts)) if parts else np.empty(0, dtype=np.uint64)


def _sorted_distinct(digests: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy 2's hash-based unique is ten times slower on these)."""
    digests = np.sort(digests)
    return digests[np.concatenate(([True], digests[1:] != digests[:-1]))] if len(digests) else digests


class KnownValues:
    """Personal values to mask, kept as a sorted array of 64-bit digests and the lengths the
    values come in, never as the values themselves.

    A line's every substring of a length some value has gets its digest from one rolling hash
    of the line and is looked up by binary search: the cost grows with the line, not with the
    extract. A digest that matches by chance only masks more; a value that occurs always
    matches. The digests are built once per extract and stored (:func:`prepare`), so a task's
    start-up reads one row, whatever the extract's size (an automaton or a regex pays per value
    added, and even a set of a million accounts' values takes seconds to build).
    """

    def __init__(self, values=()) -> None:
        self.digests = np.empty(0, dtype=np.uint64)
        self.lengths = np.empty(0, dtype=np.int64)
        self.update(values)

    def update(self, values) -> int:
        """Adds values (too-short ones ignored); returns how many were new."""
        values = [v for v in values if len(v) >= MIN_LENGTH]
        return self.merge(digests_of(values), {len(v) for v in values})

    def merge(self, digests: np.ndarray, lengths) -> int:
        """Adds prebuilt digests (:meth:`to_row`'s); returns how many were new."""
        before = len(self.digests)
        if len(digests):
            self.digests = (_sorted_distinct(np.concatenate((self.digests, digests)))
                            if len(self.digests) else digests)
            self.lengths = np.union1d(self.lengths, np.fromiter(lengths, dtype=np.int64))
        return len(self.digests) - before

    def discard(self, values) -> None:
        values = [v for v in values if len(v) >= MIN_LENGTH]
        self.digests = np.setdiff1d(self.digests, digests_of(values), assume_unique=True)

    def __len__(self) -> int:
        return len(self.digests)

    def __contains__(self, value: str) -> bool:
        return (0, len(value)) in self.spans(value)

    def spans(self, message: str) -> list[tuple[int, int]]:
        """Where known values occur in the message (overlapping ones included)."""
        size = len(message)
        lengths = self.lengths[self.lengths <= size]
        if not len(self.digests) or not len(lengths):
            return []
        up = _POWERS.upto(size + 1)[0]
        prefix = _prefix(message, _POWERS.upto(size + 1))
        digests, found = self.digests, []
        # Up to ~64 k substrings per lookup: a long message is not one huge array.
        step = max(1, (1 << 16) // len(lengths))
        for first in range(0, size, step):
            starts = np.arange(first, min(first + step, size), dtype=np.int64)[:, None]
            ends = starts + lengths[None, :]
            valid = ends <= size
            ends = np.where(valid, ends, size)
            candidates = _salted(prefix[ends] - prefix[starts] * up[lengths][None, :],
                                 lengths[None, :])
            at = np.searchsorted(digests, candidates)
            at[at == len(digests)] = 0
            hit = (digests[at] == candidates) & valid
            if hit.any():
                rows, cols = np.nonzero(hit)
                found.extend(zip((rows + first).tolist(), (rows + first + lengths[cols]).tolist()))
        return found

    def mask(self, message: str) -> str:
        """The message with every occurrence of a known value replaced by MASK, in one pass
        (a replace per value would be quadratic in a line that names thousands)."""
        found = self.spans(message)
        if not found:
            return message
        found.sort()
        out, end = [], 0
        for start, stop in found:
            if start >= end:
                out += (message[end:start], MASK)
                end = stop
            elif stop > end:  # overlaps the masked run: extend it
                end = stop
        out.append(message[end:])
        return "".join(out)

    @classmethod
    def of_chunks(cls, chunks) -> KnownValues:
        """Built from chunks of values, sorted once at the end (bounded memory)."""
        parts, lengths = [], set()
        for values in chunks:
            values = [v for v in values if len(v) >= MIN_LENGTH]
            parts.append(digests_of(values))
            lengths.update(map(len, values))
        known = cls()
        if parts:
            known.merge(_sorted_distinct(np.concatenate(parts)), lengths)
        return known

    def to_arrays(self) -> tuple[np.ndarray, list[int]]:
        return self.digests, self.lengths.tolist()

    def to_row(self) -> dict:
        """The stored form (table pii_digests)."""
        return {"value_count": len(self.digests), "lengths": ",".join(map(str, self.lengths.tolist())),
                "digests": self.digests.astype("<u8").tobytes()}

    @staticmethod
    def from_row(lengths: str, digests: bytes) -> tuple[np.ndarray, list[int]]:
        return (np.frombuffer(digests, dtype="<u8").astype(np.uint64, copy=False),
                [int(n) for n in lengths.split(",") if n])


def mask_text(message: str, known: KnownValues | set[str] | frozenset[str] = frozenset()) -> str:
    message = EMAIL.sub(MASK, message)
    message = PHONE.sub(MASK, message)
    if not known:
        return message
    if not isinstance(known, KnownValues):
        known = KnownValues(known)
    return known.mask(message)


class PiiFilter(logging.Filter):
    """Masks emails, phone numbers and known values in a record's message and exception."""

    def __init__(self) -> None:
        super().__init__("arrears.pii")
        self.known = KnownValues()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = str(record.msg)
        record.msg, record.args = mask_text(message, self.known), None
        if record.exc_info and record.exc_info[1] is not None:
            _mask_exception(record.exc_info[1], self.known, set())
            record.exc_text = None  # formatted again from the masked exception
        return True


_FILTER = PiiFilter()


def _mask_exception(exc: BaseException, known, seen: set[int]) -> None:
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        try:
            exc.args = tuple(mask_text(a, known) if isinstance(a, str) else a for a in exc.args)
            if getattr(exc, "__notes__", None):
                exc.__notes__ = [mask_text(n, known) for n in exc.__notes__]
        except (AttributeError, TypeError):
            pass
        if exc.__cause__ is not None:
            _mask_exception(exc.__cause__, known, seen)
        exc = exc.__context__


def structlog_processor(logger, method_name, event_dict):
    """Masks every text value of a structlog event and the exception it carries."""
    known = _FILTER.known
    for key, value in list(event_dict.items()):
        if isinstance(value, str):
            event_dict[key] = mask_text(value, known)
        elif key == "exc_info" and value:
            exc = value if isinstance(value, BaseException) else (
                value[1] if isinstance(value, tuple) else sys.exc_info()[1])
            if exc is not None:
                _mask_exception(exc, known, set())
    return event_dict


class MaskingStream(io.TextIOBase):
    """A text stream that masks each line before passing it on (a task's stdout and stderr,
    which the supervisor writes to the task log line by line). ``print`` writes a line in
    pieces, so text is held until its newline (or a flush) to mask whole lines."""

    def __init__(self, stream) -> None:
        super().__init__()
        self.stream = stream
        self._pending = ""

    def write(self, s: str) -> int:
        self._pending += s
        if "\n" in self._pending:
            lines, _, self._pending = self._pending.rpartition("\n")
            self.stream.write(mask_text(lines + "\n", _FILTER.known))
        return len(s)

    def flush(self) -> None:
        if self._pending:
            self.stream.write(mask_text(self._pending, _FILTER.known))
            self._pending = ""
        self.stream.flush()

    def writable(self) -> bool:
        return True

    def __getattr__(self, name):  # fileno, encoding, isatty, buffer...
        return getattr(self.stream, name)


def mask_std_streams() -> None:
    """Wrap this process's stdout and stderr in :class:`MaskingStream` (idempotent); for task
    processes, whose streams are the supervisor's pipes."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, MaskingStream):
            setattr(sys, name, MaskingStream(stream))


def install() -> PiiFilter:
    """Attach the filter to the root logger's handlers and the package's logger (idempotent)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    for name in ("arrears", "airflow.task"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    try:
        import structlog
        # The configured list itself, so loggers already bound see the new processor too.
        processors = structlog.get_config()["processors"]
        if structlog_processor not in processors:
            processors.insert(0, structlog_processor)
    except ImportError:
        pass
    return _FILTER


def extract_in_force(conn, cycle_date: date) -> date | None:
    """The extract whose people a task of D may log about: D's, or the latest before it."""
    return conn.execute(text("SELECT MAX(cycle_date) FROM extract_accounts WHERE cycle_date <= :d"),
                        {"d": cycle_date}).scalar()


def known_values(conn, extract_date: date, rows_per_chunk: int = 20_000) -> Iterator[list[str]]:
    """The personal data of that extract, in chunks of rows (one streamed query: a 1 M-account
    extract held whole as Python strings took 750 MB), values as they come (the digests remove
    the repeats)."""
    query = text("SELECT holder_name, service_address, email, mobile FROM extract_accounts"
                 " WHERE cycle_date = :d")  # options on the statement, not on the connection
    result = conn.execute(query.execution_options(stream_results=True, yield_per=rows_per_chunk),
                          {"d": extract_date})
    for rows in result.partitions(rows_per_chunk):
        yield [v.strip() for v in chain.from_iterable(rows) if v]


def register(values) -> int:
    """Mask these values in every later log line of this process; returns how many were new.
    Airflow's masker gets none of them (see the module's docstring)."""
    return _FILTER.known.update(values)


def _fingerprint(conn, extract_date: date) -> str | None:
    return conn.execute(text("SELECT fingerprint FROM deliveries WHERE cycle_date = :d"),
                        {"d": extract_date}).scalar()


def _stored(conn, extract_date: date, fingerprint: str):
    return conn.execute(text("SELECT lengths, digests FROM pii_digests"
                             " WHERE cycle_date = :d AND fingerprint = :f"),
                        {"d": extract_date, "f": fingerprint}).first()


def prepare(engine: Engine, extract_date: date) -> int:
    """Build and store the digests of the extract of that date (the ingest task calls this once
    D is loaded, so no later task reads the extract itself); returns how many there are."""
    with engine.begin() as conn:
        fingerprint = _fingerprint(conn, extract_date)
        if fingerprint is None:  # no delivery recorded: nothing to key the digests by
            return 0
        known = KnownValues.of_chunks(known_values(conn, extract_date))
        conn.execute(text("DELETE FROM pii_digests WHERE cycle_date = :d"), {"d": extract_date})
        conn.execute(text("INSERT INTO pii_digests (cycle_date, fingerprint, value_count, lengths,"
                          " digests) VALUES (:d, :f, :value_count, :lengths, :digests)"),
                     {"d": extract_date, "f": fingerprint, **known.to_row()})
    return len(known)


_LOADED: set[tuple[str, date]] = set()  # (database, extract date) already registered here


def protect_task_logs(engine: Engine, cycle_date: date) -> int:
    """Install the masking and register the personal data of the extract in force on D: its
    stored digests (one row, :func:`prepare`), or, where none were stored for this delivery, the
    extract itself (then stored for the next task). Read once per process and extract; returns
    how many values this process masks."""
    install()
    with engine.connect() as conn:
        extract = extract_in_force(conn, cycle_date)
        key = (engine.url.render_as_string(hide_password=True), extract)
        if extract is None or key in _LOADED:
            return len(_FILTER.known)
        fingerprint = _fingerprint(conn, extract)
        row = _stored(conn, extract, fingerprint) if fingerprint is not None else None
    if row is None:
        try:
            prepare(engine, extract)  # for the tasks after this one
        except Exception:  # noqa: BLE001 - a read-only database (what-if) still masks below
            pass
        with engine.connect() as conn:
            row = _stored(conn, extract, fingerprint) if fingerprint is not None else None
            if row is None:
                _FILTER.known.merge(*KnownValues.of_chunks(known_values(conn, extract)).to_arrays())
    if row is not None:
        _FILTER.known.merge(*KnownValues.from_row(*row))
    _LOADED.add(key)
    return len(_FILTER.known)
