"""Personal data is masked in task log lines, stdlib and structlog, exceptions included."""
from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from arrears.audit import pii

NAME, ADDRESS = "王伟", "北京市朝阳区人民路1号"
EMAIL, MOBILE, E164 = "wang.wei@example.com", "13900000001", "+8613900000001"


@pytest.fixture
def known():
    added = pii.register({NAME, ADDRESS})
    yield
    pii._FILTER.known.difference_update({NAME, ADDRESS}) if added else None


def _assert_clean(text: str) -> None:
    for value in (NAME, ADDRESS, EMAIL, MOBILE, E164):
        assert value not in text, f"{value!r} leaked: {text}"
    assert pii.MASK in text


def test_mask_text_patterns_and_known_values(known):
    masked = pii.mask_text(f"{NAME} at {ADDRESS} <{EMAIL}> {MOBILE} / {E164} / 139 0000 0001",
                           pii._FILTER.known)
    _assert_clean(masked)
    assert "139 0000 0001" not in masked
    # ids, amounts and dates stay readable
    assert pii.mask_text("account A123 owes 1000.00 since 2026-11-16, bill B20261016") == \
        "account A123 owes 1000.00 since 2026-11-16, bill B20261016"


def test_stdlib_records_and_exceptions_are_masked(known):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        pii.install()
        log = logging.getLogger("arrears.somewhere")
        log.warning("could not send to %s (%s) for %s", EMAIL, MOBILE, NAME)
        try:
            raise ValueError(f"bad address {ADDRESS} for {E164}")
        except ValueError:
            logging.getLogger("some.library").exception("delivery failed")
    finally:
        root.removeHandler(handler)
    _assert_clean(stream.getvalue())
    assert "delivery failed" in stream.getvalue() and "ValueError" in stream.getvalue()


def test_structlog_events_and_tracebacks_are_masked(known):
    """The task runner logs "Task failed with exception" through structlog with the exception."""
    out = io.StringIO()
    saved = structlog.get_config()
    structlog.configure(processors=[structlog.processors.format_exc_info,
                                    structlog.processors.JSONRenderer()],
                        logger_factory=structlog.PrintLoggerFactory(out),
                        cache_logger_on_first_use=False)
    try:
        pii.install()
        log = structlog.get_logger("task")
        log.info("sending", to=EMAIL, holder=NAME)
        try:
            try:
                raise KeyError(MOBILE)
            except KeyError as inner:
                raise RuntimeError(f"SMTP refused {EMAIL} for {NAME}, {ADDRESS}") from inner
        except RuntimeError:
            log.exception("Task failed with exception")
    finally:
        structlog.configure(**saved)
    text = out.getvalue()
    _assert_clean(text)
    events = [json.loads(line) for line in text.splitlines()]
    assert events[1]["event"] == "Task failed with exception" and "RuntimeError" in events[1]["exception"]
