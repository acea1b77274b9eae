"""Money is integer fen (1/100 CNY) everywhere inside the project; never floats."""
from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

FEN = Decimal("0.01")


class AmountError(ValueError):
    """A text that is not a valid amount of money."""


# CONTRACT §1: a plain decimal (no exponent, NaN, Infinity or thousands separator), at most two
# decimals, magnitude under 10^12. ASCII digits only: `\d` would also take other scripts' digits.
# The rule's parts, used here and by the ingest's vectorised screen (arrears.ingest.screen).
MAX_DIGITS = 12  # |amount| < 10^12
MAX_DECIMALS = 2
_SIGN, _DIGIT = "[+-]?", "[0-9]"
_PLAIN_DECIMAL = re.compile(rf"(?P<sign>{_SIGN})0*(?P<whole>{_DIGIT}+)(?:\.(?P<decimals>{_DIGIT}*))?")
# The same rule with its bounds in the pattern: exactly the texts parse_fen accepts (blanks
# around them aside), in the syntax Python's re and RE2 share.
AMOUNT_WITHIN_BOUNDS = (rf"(?P<sign>{_SIGN})0*(?P<whole>{_DIGIT}{{1,{MAX_DIGITS}}})"
                        rf"(?:\.(?P<decimals>{_DIGIT}{{1,{MAX_DECIMALS}}}))?")


def parse_fen(text: str) -> int:
    """``"12.3"`` -> ``1230``. The one definition of an amount (CONTRACT §1): rejects blanks,
    anything but a plain decimal, more than two decimals and a magnitude of 10^12 or more."""
    raw = (text or "").strip()
    if not raw:
        raise AmountError("is blank")
    match = _PLAIN_DECIMAL.fullmatch(raw)
    if match is None or match.group(3) == "":
        raise AmountError(f"{quoted(raw)} is not a plain decimal (digits, optionally a point "
                          f"and one or two decimals; no exponent, no thousands separator)")
    sign, whole, decimals = match.group(1), match.group(2), match.group(3) or ""
    if len(decimals) > MAX_DECIMALS:
        raise AmountError(f"{quoted(raw)} has more than two decimals")
    if len(whole) > MAX_DIGITS:
        raise AmountError(f"{quoted(raw)} is 10^12 or more")
    fen = int(whole) * 100 + int(decimals.ljust(MAX_DECIMALS, "0"))
    return -fen if sign == "-" else fen


def quoted(text: str, limit: int = 40) -> str:
    """A value quoted for a message, cut short: a reason never carries a megabyte."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def to_fen(value: Decimal) -> int:
    """Round a Decimal amount in CNY half-up to whole fen."""
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_fen(fen: int) -> str:
    """``1230`` -> ``"12.30"`` (the contract's two-decimal CNY)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"
