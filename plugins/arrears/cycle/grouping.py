"""Merge-joining several account-ordered row streams without holding them in memory."""
from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter


class AccountStream:
    """Rows ordered by account_id; ``take(a)`` returns the rows of account ``a`` (ids asked for
    in ascending order), skipping rows of accounts never asked for."""

    def __init__(self, rows: Iterable, key=itemgetter(0)):
        self._rows = iter(rows)
        self._key = key
        self._advance()

    def _advance(self) -> None:
        """The next row and its account id (None once the rows are exhausted)."""
        self._row = next(self._rows, None)
        self._next_id = None if self._row is None else self._key(self._row)

    def take(self, account_id: str) -> list:
        # Most streams have no row for most accounts: that answer costs one comparison.
        if self._next_id is None or self._next_id > account_id:
            return []
        while self._next_id is not None and self._next_id < account_id:
            self._advance()
        rows = []
        while self._next_id is not None and self._next_id == account_id:
            rows.append(self._row)
            self._advance()
        return rows
