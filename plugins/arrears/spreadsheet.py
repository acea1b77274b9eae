"""The one writer of CSV files that people open in a spreadsheet (CONTRACT §1): decisions.csv,
the agents' lists, manifests, disconnection notices and orders, quarantine exports.

Customer-supplied text (a holder name, an address, a raw quarantined row) may start like a
formula. A cell whose first character is ``=``, ``+``, ``-``, ``@``, tab or carriage return gets
a leading apostrophe, as OWASP's "CSV injection" page advises: spreadsheets then show the text
as it is and never evaluate it, and a reader sees at a glance that the cell was changed. A plain
number (``-5.00``, ``+8613900000001``) is left alone: it cannot run anything, and quoting it
would turn figures into text. Nothing else is touched, so a safe file stays byte-identical.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def neutralise(cell):
    """``cell`` as a spreadsheet may safely read it (see the module's docstring)."""
    if isinstance(cell, str) and cell.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def is_safe(cell: str) -> bool:
    """True when a spreadsheet cannot read ``cell`` as a formula (what neutralise guarantees)."""
    return not cell.startswith(FORMULA_START) or bool(_PLAIN_NUMBER.fullmatch(cell))


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence]) -> bytes:
    """UTF-8 CSV (``\\n`` line ends) of ``header`` and ``rows``, every cell neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([neutralise(c) for c in header])
    writer.writerows([neutralise(c) for c in row] for row in rows)
    return out.getvalue().encode("utf-8")
