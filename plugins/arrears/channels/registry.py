"""The registry: every channel folder's ``CHANNEL``, in the order of ``arrears.channels.NAMES``."""
from __future__ import annotations

import importlib
from functools import lru_cache

from arrears.channels import NAMES
from arrears.channels.base import Channel, ChannelRule


@lru_cache(maxsize=1)
def registry() -> dict[str, Channel]:
    found = {}
    for name in NAMES:
        channel = importlib.import_module(f"arrears.channels.{name}").CHANNEL
        if channel.name != name:
            raise RuntimeError(f"channel folder {name}/ declares CHANNEL.name {channel.name!r}: "
                               f"they must be the same")
        found[name] = channel
    return found


def channel(name: str) -> Channel:
    try:
        return registry()[name]
    except KeyError:
        raise ValueError(f"unknown channel {name!r}: use one of {', '.join(NAMES)}") from None


def rules() -> tuple[ChannelRule, ...]:
    """The plain data the policy gets."""
    return tuple(c.rule for c in registry().values())


def transports(outbox, get_connection) -> dict:
    """Channel -> transport: its Airflow connection when configured, else its embedded default
    (files under the outbox)."""
    out = {}
    for name, ch in registry().items():
        conn = get_connection(ch.connection_id) if ch.connection_id else None
        out[name] = ch.gateway(conn) if conn else ch.file_default(outbox)
    return out
