"""Money is integer fen (1/100 CNY) everywhere inside the project; never floats."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

FEN = Decimal("0.01")


class AmountError(ValueError):
    """A text that is not a valid amount of money."""


def parse_fen(text: str) -> int:
    """``"12.3"`` -> ``1230``. Rejects blanks, non-numbers and more than two decimals."""
    raw = (text or "").strip()
    if not raw:
        raise AmountError("amount is blank")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise AmountError(f"amount {raw!r} is not a number") from None
    if not value.is_finite():
        raise AmountError(f"amount {raw!r} is not a number")
    if value != value.quantize(FEN):
        raise AmountError(f"amount {raw!r} has more than two decimals")
    return int(value * 100)


def to_fen(value: Decimal) -> int:
    """Round a Decimal amount in CNY half-up to whole fen."""
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_fen(fen: int) -> str:
    """``1230`` -> ``"12.30"`` (the contract's two-decimal CNY)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"
