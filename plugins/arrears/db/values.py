"""Values as the two databases hand them back, made alike: a leaf every area may import."""
from __future__ import annotations

from datetime import date


def as_date(value) -> date | None:
    """SQLite hands dates back as text, PostgreSQL as dates."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def split_list(value: str) -> frozenset[str]:
    """A stored `;`-list (actions, holds, kinds) as a set."""
    if not value:  # most lists are empty: read for every account of a cycle
        return frozenset()
    return frozenset([i for i in value.split(";") if i])
