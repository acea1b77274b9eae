"""The message kinds are matched in SQL with LIKE '%<kind>%' on their ';'-lists (outbox.kinds,
decisions.message_kinds; README, Decisions as data): that is exact only while no kind contains
another and every query names a kind of the vocabulary."""
import re
from itertools import permutations

from arrears.model import MESSAGE_KINDS
from arrears.paths import SQL_DIR


def test_no_message_kind_contains_another():
    assert [(a, b) for a, b in permutations(MESSAGE_KINDS, 2) if a in b] == []


def test_every_kind_a_query_matches_as_text_is_a_message_kind():
    matched = {kind for path in SQL_DIR.rglob("*.sql")
               for kind in re.findall(r"kinds\s+LIKE\s+'%([a-z_]+)%'", path.read_text())}
    assert matched and matched <= set(MESSAGE_KINDS), matched - set(MESSAGE_KINDS)
