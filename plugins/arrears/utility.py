"""The utility's identity (include/utility.toml): one file for the name, contact and payment
details and the bureau reporter, read by messages, letters, post notices and the bureau file."""
from __future__ import annotations

import tomllib
from functools import lru_cache

from arrears.paths import UTILITY_FILE


@lru_cache(maxsize=1)
def identity() -> dict:
    with UTILITY_FILE.open("rb") as fh:
        return tomllib.load(fh)
