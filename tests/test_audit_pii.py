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
    pii._FILTER.known.discard({NAME, ADDRESS}) if added else None


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


def _airflow_masker():
    from airflow.sdk._shared.secrets_masker import _secrets_masker
    return _secrets_masker()


def _extract(conn, day, accounts: int, tag: str) -> list[tuple]:
    from arrears.db import bulk
    rows = [(day, f"{tag}{i:06d}", f"{tag}名{i}", "residential", f"{tag}市人民路{i}号",
             f"{tag.lower()}{i}@example.com", f"021-{i:08d}") for i in range(accounts)]
    bulk.insert_rows(conn, "extract_accounts", ("cycle_date", "account_id", "holder_name",
                     "customer_class", "service_address", "email", "mobile"), rows)
    return rows


def test_start_up_hands_airflow_masker_a_constant_number_of_values(engine):
    """Whatever the extract's size, a task's start-up adds no value to Airflow's masker (which
    recompiles a regex per value) and the package itself masks every one."""
    from datetime import date
    small, large = date(2026, 11, 2), date(2026, 11, 3)
    with engine.begin() as conn:
        few = _extract(conn, small, 10, "S")
        many = _extract(conn, large, 3000, "L")
    masker = _airflow_masker()
    added = []
    try:
        for day, rows in ((small, few), (large, many)):
            before = len(masker.patterns)
            assert pii.protect_task_logs(engine, day) >= 4 * len(rows)
            added.append(len(masker.patterns) - before)
            line = pii.mask_text(" | ".join(" ".join(r[2:3] + r[4:]) for r in rows), pii._FILTER.known)
            assert not [r[0] for r in rows if any(v in line for v in (r[2], r[4], r[6]))]
        assert added == [0, 0]
        # a late task of a later day masks the latest extract before it, read once per process
        assert pii.protect_task_logs(engine, date(2026, 11, 9)) == len(pii._FILTER.known)
    finally:
        pii._FILTER.known.discard(v for r in few + many for v in (r[2], r[4], r[5], r[6]))


def _values(count: int) -> list[str]:
    """Names of 2-3 characters, addresses, emails and numbers the patterns alone would miss."""
    kinds = (lambda i: chr(0x4E00 + i % 20000) + chr(0x4E00 + i // 20000) + ("" if i % 2 else "华"),
             lambda i: f"浦东新区花园路{i}弄",
             lambda i: f"u{i}.x@mail",  # not an email to the pattern (no dot after @)
             lambda i: f"0571-{i:07d}")
    return [kinds[i % 4](i // 4) for i in range(count)]


def test_two_hundred_thousand_known_values_are_all_masked():
    values = sorted(set(_values(200_000)), key=len, reverse=True)
    assert len(values) > 195_000
    added = pii.register(values)
    saved = structlog.get_config()
    out = io.StringIO()
    structlog.configure(processors=[structlog.processors.format_exc_info,
                                    structlog.processors.JSONRenderer()],
                        logger_factory=structlog.PrintLoggerFactory(out),
                        cache_logger_on_first_use=False)
    masker = _airflow_masker()
    before = len(masker.patterns)
    try:
        pii.install()
        log = structlog.get_logger("task")
        chunks = [values[i:i + 500] for i in range(0, len(values), 500)]
        for chunk in chunks:
            log.info("holders " + ";".join(chunk))
        for chunk in chunks:
            try:
                raise LookupError("no route for " + ";".join(chunk))
            except LookupError:
                log.exception("Task failed with exception")
        stream = io.StringIO()
        printed = pii.MaskingStream(stream)
        for chunk in chunks[:50]:
            print("printed", *chunk, file=printed)
        printed.flush()
    finally:
        structlog.configure(**saved)
        pii._FILTER.known.discard(values)
    assert added == len(values) and len(masker.patterns) == before
    # Checked by the text's shape, not by the matcher itself: every value became ***, nothing else.
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(events) == 2 * len(chunks)
    assert [e["event"] for e in events[:len(chunks)]] == \
        ["holders " + ";".join([pii.MASK] * len(c)) for c in chunks]
    assert [e["exception"].rstrip().splitlines()[-1] for e in events[len(chunks):]] == \
        ["LookupError: no route for " + ";".join([pii.MASK] * len(c)) for c in chunks]
    assert stream.getvalue().splitlines() == \
        ["printed " + " ".join([pii.MASK] * len(c)) for c in chunks[:50]]


def _fresh_process():
    """What a new task process starts with: no value known, no extract read."""
    pii._LOADED.clear()
    pii._FILTER.known = pii.KnownValues()


def test_start_up_reads_the_digests_stored_once_per_delivery(engine):
    """The ingest task stores the extract's digests (pii.prepare); a task's start-up then reads
    that one row, not the extract, and a new delivery of the date builds them again."""
    from datetime import date
    from sqlalchemy import text
    day = date(2026, 11, 4)
    saved = pii._FILTER.known
    with engine.begin() as conn:
        rows = _extract(conn, day, 50, "P")
        conn.execute(text("INSERT INTO deliveries (cycle_date, fingerprint, files, ingested_at)"
                          " VALUES (:d, 'first', '{}', 'now')"), {"d": day})
    try:
        assert pii.prepare(engine, day) == 4 * len(rows)  # names, addresses, emails, numbers
        with engine.begin() as conn:  # the extract changes behind the stored digests' back
            conn.execute(text("UPDATE extract_accounts SET holder_name = 'Q' || holder_name,"
                              " service_address = 'Q' WHERE cycle_date = :d"), {"d": day})
        _fresh_process()
        masker = _airflow_masker()
        before = len(masker.patterns)
        assert pii.protect_task_logs(engine, day) == 4 * len(rows)
        assert len(masker.patterns) == before
        names = " ".join(r[2] for r in rows)
        assert pii.mask_text(names, pii._FILTER.known) == " ".join([pii.MASK] * len(rows))
        with engine.begin() as conn:  # D delivered again: the digests follow the new extract
            conn.execute(text("UPDATE deliveries SET fingerprint = 'second' WHERE cycle_date = :d"),
                         {"d": day})
        _fresh_process()
        pii.protect_task_logs(engine, day)
        assert pii.mask_text(f"Q{rows[0][2]} at Q", pii._FILTER.known) == f"{pii.MASK} at Q"
        with engine.connect() as conn:
            assert conn.execute(text("SELECT fingerprint FROM pii_digests WHERE cycle_date = :d"),
                                {"d": day}).scalar() == "second"
    finally:
        _fresh_process()
        pii._FILTER.known = saved
