"""Personal data out of the task logs: names, phone numbers, emails and addresses.

Two layers, because of how Airflow 3 writes a task's log. The task process hands every log event
(stdlib ``logging`` records and structlog events, including the task runner's own "Task failed
with exception" traceback) to the supervisor process, which runs Airflow's secrets masker over it
before it reaches the log file. So:

* known values (the holder names, addresses, emails and mobiles of the day's extract) are
  registered with ``airflow.sdk.log.mask_secret``, which masks them in the task process and in
  the supervisor, exceptions included;
* but that masker skips values shorter than 5 characters, and most Chinese names are 2-3: so
  the package also puts its own masking first in the task process's structlog chain
  (:func:`structlog_processor`, which also masks exception messages) and on the root logger's
  handlers (:class:`PiiFilter`, for stdlib records); both mask known values and anything that
  looks like an email or a phone number.

The package installs both for every task of an ``arrears_*`` DAG through the plugin's task
listener (plugins/arrears_plugin.py), so no task has to remember to.
"""
from __future__ import annotations

import logging
import re
from datetime import date

from sqlalchemy import Engine, text

MASK = "***"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# CN mobiles (11 digits starting 1), with or without +86, and other E.164 numbers.
PHONE = re.compile(r"(?<![\w-])(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)|\+\d{8,15}(?!\d)")
MIN_LENGTH = 2  # shorter values (e.g. a one-letter name) would mask half the log


def mask_text(message: str, known: frozenset[str] | set[str] = frozenset()) -> str:
    message = EMAIL.sub(MASK, message)
    message = PHONE.sub(MASK, message)
    if not known:
        return message
    # Look up every substring of a length some known value has: cost grows with the message,
    # not with the number of known values (a day's extract can hold hundreds of thousands).
    lengths = _LENGTHS if known is _FILTER.known else {len(v) for v in known}
    hits = {message[i:i + n] for n in lengths for i in range(len(message) - n + 1)
            if message[i:i + n] in known}
    for value in sorted(hits, key=len, reverse=True):  # "王伟伟" before "王伟"
        message = message.replace(value, MASK)
    return message


class PiiFilter(logging.Filter):
    """Masks emails, phone numbers and known values in a record's message and exception."""

    def __init__(self) -> None:
        super().__init__("arrears.pii")
        self.known: set[str] = set()

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
_LENGTHS: set[int] = set()  # of the values in _FILTER.known


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
            import sys
            exc = value if isinstance(value, BaseException) else (
                value[1] if isinstance(value, tuple) else sys.exc_info()[1])
            if exc is not None:
                _mask_exception(exc, known, set())
    return event_dict


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


def known_values(engine: Engine, cycle_date: date) -> set[str]:
    """The personal data of D's extract (and the latest extract before it, for late tasks)."""
    values: set[str] = set()
    with engine.connect() as conn:
        latest = conn.execute(text("SELECT MAX(cycle_date) FROM extract_accounts"
                                   " WHERE cycle_date <= :d"), {"d": cycle_date}).scalar()
        if latest is None:
            return values
        for row in conn.execute(text(
                "SELECT holder_name, service_address, email, mobile FROM extract_accounts"
                " WHERE cycle_date = :d"), {"d": latest}):
            values.update(v.strip() for v in row if v and len(v.strip()) >= MIN_LENGTH)
    return values


# Airflow's masker recompiles one big regex per value added (quadratic): hand it at most this
# many per task. It matters only for raw stdout/stderr of the task process, which bypasses the
# package's own processors; every log call goes through them whatever the number of values.
AIRFLOW_MASKER_CAP = 2000
AIRFLOW_MASKER_MIN_LENGTH = 5  # it ignores shorter values anyway


def register(values: set[str]) -> int:
    """Mask these values in every later log line of this task (and in its supervisor)."""
    new = values - _FILTER.known
    _FILTER.known.update(new)
    _LENGTHS.update(len(v) for v in new)
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # outside Airflow the logging filter is all there is
        return len(new)
    for value in sorted(v for v in new if len(v) >= AIRFLOW_MASKER_MIN_LENGTH)[:AIRFLOW_MASKER_CAP]:
        mask_secret(value)
    return len(new)


def protect_task_logs(engine: Engine, cycle_date: date) -> int:
    """Install the filter and register D's personal data; returns how many values were added."""
    install()
    return register(known_values(engine, cycle_date))
