"""Merge-joining several account-ordered row streams without holding them in memory."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import groupby
from operator import itemgetter


class AccountStream:
    """Rows ordered by account_id; ``take(a)`` returns the rows of account ``a`` (ids asked for
    in ascending order), skipping rows of accounts never asked for."""

    def __init__(self, rows: Iterable, key=itemgetter(0)):
        self._groups: Iterator = groupby(rows, key=key)
        self._current = next(self._groups, None)

    def take(self, account_id: str) -> list:
        while self._current is not None and self._current[0] < account_id:
            self._current = next(self._groups, None)
        if self._current is not None and self._current[0] == account_id:
            rows = list(self._current[1])
            self._current = next(self._groups, None)
            return rows
        return []
