"""AccountStream: the rows of each account asked for, in order, from one account-ordered stream."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from arrears.cycle.grouping import AccountStream

ids = st.sampled_from(["A", "A1", "A10", "A2", "B", "b", "é", "账户"])


@given(rows=st.lists(st.tuples(ids, st.integers()), max_size=30),
       asked=st.lists(ids, unique=True, max_size=8))
def test_take_returns_exactly_the_rows_of_each_account_asked_for(rows, asked):
    rows = sorted(rows, key=lambda r: r[0])  # ordered by account id, as the queries return them
    stream = AccountStream(iter(rows))
    for account in sorted(asked):
        assert stream.take(account) == [r for r in rows if r[0] == account]


def test_an_account_is_taken_once_and_the_stream_may_run_dry():
    stream = AccountStream(iter([("A", 1), ("A", 2), ("C", 3)]))
    assert stream.take("A") == [("A", 1), ("A", 2)]
    assert stream.take("B") == []
    assert stream.take("C") == [("C", 3)]
    assert stream.take("D") == []
    assert AccountStream(iter([])).take("A") == []
