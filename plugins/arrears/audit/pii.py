"""Personal data out of the task logs: names, phone numbers, emails and addresses.

Airflow 3 hands every log event of a task process (stdlib ``logging`` records and structlog
events, including the task runner's own "Task failed with exception" traceback) to the supervisor,
which runs Airflow's secrets masker over it before it reaches the log file. That masker is no
place for a day's extract: it recompiles one big regex per value added (2,000 values took 131 s)
and runs it over every line. So the package masks in the task process itself, before anything
leaves it, with a matcher whose start-up is one query and one set (no per-value work):

* :class:`KnownValues` holds D's personal data and the lengths they come in; a line costs one set
  lookup per (position, length), so its cost grows with the line, not with the extract;
* :func:`structlog_processor` (first in the task process's structlog chain, exception messages
  included), :class:`PiiFilter` (on the root logger's handlers, for stdlib records) and
  :class:`MaskingStream` (around the task's ``sys.stdout``/``sys.stderr``, for ``print``) mask
  known values and anything that looks like an email or a phone number;
* Airflow's own masker gets none of these values (it also ignores values under 5 characters,
  and most Chinese names are 2-3).

The package installs all three for every task of an ``arrears_*`` DAG through the plugin's task
listener (plugins/arrears_plugin.py), so no task has to remember to. The values are read once per
process and extract date (:func:`protect_task_logs` keeps them), so a ``dag.test()`` run of many
tasks in one process reads them once.
"""
from __future__ import annotations

import io
import logging
import re
import sys
from datetime import date
from itertools import chain

from sqlalchemy import Engine, text

MASK = "***"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# CN mobiles (11 digits starting 1), with or without +86, and other E.164 numbers.
PHONE = re.compile(r"(?<![\w-])(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)|\+\d{8,15}(?!\d)")
MIN_LENGTH = 2  # shorter values (e.g. a one-letter name) would mask half the log


class KnownValues:
    """Personal values to mask, with the lengths they come in.

    Matching looks up every substring of a length some value has: one set lookup per (position,
    length), whatever the number of values, and building it is one set (a 1 M-account extract's
    ~4 M values take well under a second), where an automaton or a regex pays per value added.
    """

    def __init__(self, values=()) -> None:
        self.values: set[str] = set()
        self.lengths: list[int] = []
        self.update(values)

    def update(self, values) -> int:
        """Adds values (too-short ones ignored); returns how many were new."""
        before = len(self.values)
        self.values.update(v for v in values if len(v) >= MIN_LENGTH)
        if len(self.values) != before:
            self.lengths = sorted({len(v) for v in self.values}, reverse=True)
        return len(self.values) - before

    def discard(self, values) -> None:
        self.values.difference_update(values)
        self.lengths = sorted({len(v) for v in self.values}, reverse=True)

    def __len__(self) -> int:
        return len(self.values)

    def __contains__(self, value: str) -> bool:
        return value in self.values

    def spans(self, message: str) -> list[tuple[int, int]]:
        """Where known values occur in the message (overlapping ones included)."""
        values, size, found = self.values, len(message), []
        for n in self.lengths:
            if n > size:
                continue
            pieces = [message[i:i + n] for i in range(size - n + 1)]
            if not values.isdisjoint(pieces):  # the common case, no value of this length: C only
                found.extend((i, i + n) for i, piece in enumerate(pieces) if piece in values)
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


def known_values(conn, extract_date: date) -> list[str]:
    """The personal data of that extract: one query, values as they come (the caller's set
    removes the repeats)."""
    rows = conn.execute(text(
        "SELECT holder_name, service_address, email, mobile FROM extract_accounts"
        " WHERE cycle_date = :d"), {"d": extract_date}).all()
    return [v.strip() for v in chain.from_iterable(rows) if v]


def register(values) -> int:
    """Mask these values in every later log line of this process; returns how many were new.
    Airflow's masker gets none of them (see the module's docstring)."""
    return _FILTER.known.update(values)


_LOADED: set[tuple[str, date]] = set()  # (database, extract date) already registered here


def protect_task_logs(engine: Engine, cycle_date: date) -> int:
    """Install the masking and register the personal data of the extract in force on D (read
    once per process and extract); returns how many values this process masks."""
    install()
    with engine.connect() as conn:
        extract = extract_in_force(conn, cycle_date)
        key = (engine.url.render_as_string(hide_password=True), extract)
        if extract is not None and key not in _LOADED:
            register(known_values(conn, extract))
            _LOADED.add(key)
    return len(_FILTER.known)
