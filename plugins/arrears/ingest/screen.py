"""The vectorised screen of the two big extract files (issue 13): whole columns at once, in
pyarrow's C++ (RE2 patterns, casts), instead of Python per row.

The screen never gives a reason. It passes a row only where it can tell, from the same rule
definitions the row functions use (validate.py's patterns, limits and enumerations,
``arrears.money``'s amount rule), that the row function would accept the row, and it computes
the same clean value; every other row goes through the row function, which stays the one
definition of what a bad row is and why. It may therefore leave a good row to the row function
(a value with blanks around it, a mobile with spaces, ``low_income;medical_device`` written in
another order): that costs time, never a different result. ``tests/test_ingest_screen.py``
checks that with Hypothesis.
"""
from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from arrears.ingest import validate as v
from arrears.model import CHANNELS, CUSTOMER_CLASSES, LANGUAGES, PROTECTIONS
from arrears.money import AMOUNT_WITHIN_BOUNDS, MAX_DECIMALS

# What str.strip() removes (str.isspace): the screen passes only values strip() leaves as they are.
WHITESPACE = "".join(filter(str.isspace, map(chr, range(sys.maxunicode + 1))))


def re2_class(chars: str) -> str:
    return "".join(f"\\x{{{ord(c):x}}}" for c in chars)


def re2(pattern: str) -> str:
    """A Python ``re`` pattern in RE2's spelling (``\\uXXXX`` escapes are Python's only)."""
    return re.sub(r"\\u([0-9a-fA-F]{4})", r"\\x{\1}", pattern)


def whole(pattern: str) -> str:
    """``fullmatch`` as an RE2 search."""
    return f"^(?:{re2(pattern)})$"


_END = f"[^{re2_class(WHITESPACE)}]"
# Nothing strip() would remove: the row functions take such a value as it is.
AS_IS = f"(?s)^(?:|{_END}|{_END}.*{_END})$"
# A mobile the screen takes: ASCII digits, an optional '+'; clean_mobile's removal of blanks and
# dashes changes nothing in it, and its patterns' \d meets only ASCII digits.
_PLAIN_MOBILE = r"^\+?[0-9]*$"


def canonical_lists(allowed: tuple[str, ...]) -> list[str]:
    """Every value enum_list returns unchanged: each subset of ``allowed``, sorted, ';'-joined."""
    return [";".join(c) for n in range(len(allowed) + 1)
            for c in itertools.combinations(sorted(allowed), n)]


def _limit(column: str) -> int:
    return v.ID_MAX if column in v.IDENTIFIERS else v.TEXT_MAX


def _matches(values: pa.Array, pattern: str) -> pa.Array:
    return pc.match_substring_regex(values, pattern)


def _fields_ok(table: pa.Table, header: list[str]) -> pa.Array:
    """check_fields for rows as wide as the header and without NUL (CsvFile.columns sends a
    file with a NUL byte to the row path): no field over its limit."""
    ok = None
    for column, values in zip(header, table.columns):
        good = pc.less_equal(pc.utf8_length(values), _limit(column))
        ok = good if ok is None else pc.and_(ok, good)
    return ok


def _as_is(values: pa.Array) -> pa.Array:
    return _matches(values, AS_IS)


def _required(values: pa.Array) -> pa.Array:
    """required(): not blank, and (here) nothing to strip."""
    return pc.and_(_as_is(values), pc.greater(pc.utf8_length(values), 0))


def _month_days() -> list[str]:
    """Every MM-DD of a year that is not a leap year: 02-29 is left to the row function."""
    day = date(2001, 1, 1)
    return [(day + timedelta(days=n)).strftime("%m-%d") for n in range(365)]


MONTH_DAYS = pa.array(_month_days())


def calendar_date(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(passes, date) for parse_date's rule: its pattern, a month and day that every year has,
    a year from 1 (date.fromisoformat's range)."""
    ok = pc.and_(_matches(values, whole(v._DATE.pattern)),
                 pc.is_in(pc.utf8_slice_codeunits(values, 5, 10), value_set=MONTH_DAYS))
    ok = pc.and_(ok, pc.invert(pc.starts_with(values, "0000")))
    stamp = pc.strptime(values, format="%Y-%m-%d", unit="s", error_is_null=True)
    return pc.fill_null(ok, False), pc.cast(stamp, pa.date32())


def positive_fen(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(passes, fen) for positive_fen's rule: the amount pattern with its bounds, and > 0."""
    parts = pc.extract_regex(values, whole(AMOUNT_WITHIN_BOUNDS))
    sign = pc.struct_field(parts, "sign")
    units = pc.cast(pc.struct_field(parts, "whole"), pa.int64())
    cents = pc.cast(pc.utf8_rpad(pc.struct_field(parts, "decimals"), MAX_DECIMALS, "0"), pa.int64())
    fen = pc.add(pc.multiply(units, 10 ** MAX_DECIMALS), cents)
    ok = pc.and_(pc.not_equal(sign, "-"), pc.greater(fen, 0))
    return pc.fill_null(ok, False), fen


def _column(table: pa.Table, header: list[str], name: str) -> pa.ChunkedArray | None:
    return table.column(header.index(name)) if name in header else None


@dataclass
class Screened:
    """``passes``: the rows the screen passed; ``records``: their clean columns (by name)."""
    passes: pa.Array
    records: dict[str, pa.Array]

    def kept(self, keep: pa.Array) -> pa.Table:
        return pa.table({name: pc.filter(values, keep) for name, values in self.records.items()})


def contact_gaps(columns, screened: Screened, keep: pa.Array, addresses: tuple[str, ...]) -> int:
    """Kept rows with an address given but not valid (a contact gap)."""
    gap = None
    for name in addresses:
        if name in columns.header:
            given = pc.greater(pc.utf8_length(columns.table.column(columns.header.index(name))), 0)
            lost = pc.and_(given, pc.equal(screened.records[name], ""))
            gap = lost if gap is None else pc.or_(gap, lost)
    return 0 if gap is None else pc.sum(pc.and_(gap, keep)).as_py() or 0


def _together(tasks: dict[str, Callable[[], pa.Array]]) -> dict[str, pa.Array]:
    """Independent column computations at once: pyarrow's kernels release the GIL, so they
    share the cores (each kernel alone runs on one)."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        running = {name: pool.submit(task) for name, task in tasks.items()}
        return {name: future.result() for name, future in running.items()}


def _all(masks) -> pa.Array:
    masks = list(masks)
    ok = masks[0]
    for mask in masks[1:]:
        ok = pc.and_(ok, mask)
    return pc.fill_null(ok, False)


def _constant(n: int, value: str) -> pa.Array:
    return pc.fill_null(pa.nulls(n, pa.string()), value)


def accounts(table: pa.Table, header: list[str]) -> Screened:
    """account_row's rules, for every row at once."""
    n = table.num_rows
    col = {name: _column(table, header, name) for name in
           ("account_id", "holder_name", "customer_class", "service_address", "email", "mobile",
            "language", "protections", "opt_out", "wechat_openid", "app_user_id")}
    given = {name: values for name, values in col.items() if values is not None}
    checks: dict[str, Callable[[], pa.Array]] = {
        "fields": lambda: _fields_ok(table, header),
        "account_id": lambda: _required(col["account_id"]),
        "holder_name": lambda: _required(col["holder_name"]),
        "customer_class": lambda: pc.is_in(col["customer_class"], value_set=pa.array(CUSTOMER_CLASSES)),
    }
    outputs: dict[str, Callable[[], pa.Array]] = {}
    for name in ("service_address", "email", "wechat_openid", "app_user_id"):
        if name in given:  # a valid address or id has no blanks: the rest to check
            checks[f"{name} as is"] = lambda values=given[name]: _as_is(values)
    if "email" in given:
        email = given["email"]
        outputs["email"] = lambda: pc.if_else(pc.and_(pc.less_equal(pc.utf8_length(email), 254),
                                                      _matches(email, re2(v._EMAIL.pattern))), email, "")
    if "mobile" in given:
        mobile = given["mobile"]
        checks["mobile"] = lambda: _matches(mobile, _PLAIN_MOBILE)
        outputs["mobile"] = lambda: pc.if_else(
            _matches(mobile, re2(v._CN_MOBILE.pattern)), pc.binary_join_element_wise(
                "+86", pc.replace_substring_regex(mobile, re2(v._CN_MOBILE.pattern), r"\1"), ""),
            pc.if_else(_matches(mobile, re2(v._E164.pattern)), mobile, ""))
    if "language" in given:
        language = given["language"]
        checks["language"] = lambda: pc.or_(pc.equal(language, ""),
                                            pc.is_in(language, value_set=pa.array(LANGUAGES)))
        outputs["language"] = lambda: pc.if_else(pc.equal(language, ""), "zh-CN", language)
    for name, allowed in (("protections", PROTECTIONS), ("opt_out", CHANNELS)):
        if name in given:
            checks[name] = lambda values=given[name], allowed=allowed: pc.is_in(
                values, value_set=pa.array(canonical_lists(allowed)))
    for name in ("wechat_openid", "app_user_id"):
        if name in given:
            outputs[name] = lambda values=given[name]: pc.if_else(
                _matches(values, re2(v._CHANNEL_ID.pattern)), values, "")
    done = _together({**{f"check {k}": f for k, f in checks.items()}, **outputs})
    out = {}
    for name in ("account_id", "holder_name", "customer_class", "service_address", "email", "mobile",
                 "language", "protections", "opt_out", "wechat_openid", "app_user_id"):
        default = "zh-CN" if name == "language" else ""
        out[name] = done.get(name, given.get(name)) if name in given else _constant(n, default)
    return Screened(_all(done[f"check {k}"] for k in checks), out)


def bills(table: pa.Table, header: list[str], account_ids: pa.Array) -> Screened:
    """bill_row's rules, for every row at once; ``account_ids``: the accounts loaded."""
    col = {name: _column(table, header, name) for name in v.REQUIRED_COLUMNS["open_items.csv"]}
    done = _together({
        "fields": lambda: _fields_ok(table, header),
        # A value equal to a loaded account id is one required() leaves as it is.
        "account_id": lambda: pc.is_in(col["account_id"], value_set=account_ids),
        "bill_period": lambda: _matches(col["bill_period"], whole(v._PERIOD.pattern)),
        "bill_id": lambda: _required(col["bill_id"]),
        "amount_due": lambda: positive_fen(col["amount_due"]),
        "due_date": lambda: calendar_date(col["due_date"]),
    })
    (amount_ok, fen), (due_ok, due) = done.pop("amount_due"), done.pop("due_date")
    return Screened(_all([*done.values(), amount_ok, due_ok]), {
        "bill_id": col["bill_id"], "account_id": col["account_id"],
        "bill_period": col["bill_period"], "amount_fen": fen, "due_date": due})
