"""What a channel declares (:class:`Channel`) and the plain data the pure policy gets from it
(:class:`ChannelRule`)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arrears.delivery.render import MessageData


@dataclass(frozen=True)
class ChannelRule:
    """The part of a channel the policy may see: names and flags, no I/O."""
    name: str
    address_field: str          # the Account attribute (= extract column) holding the address
    counts: bool = True         # counts toward the contact limits of CONTRACT §2


@dataclass(frozen=True)
class Channel:
    name: str
    address_column: str                              # extract_accounts column
    clean_address: Callable[[str], str]              # the valid address, or '' (a contact gap)
    templates: tuple[str, ...]                       # under include/templates/messages/
    compose: Callable[["MessageData"], tuple[str, str, str]]   # -> (subject, text, html)
    connection_id: str                               # Airflow connection of the real transport
    gateway: Callable[[Any], Any]                    # connection -> transport
    file_default: Callable[[Any], Any]               # outbox root -> embedded default transport
    counts_toward_limits: bool = True
    window_bound: bool = True                        # sent only inside the contact window
    reply_opt_out: tuple[str, ...] = field(default=())   # replies meaning "stop" on this channel

    @property
    def opt_out_hold(self) -> str:
        return f"opt_out_{self.name}"

    @property
    def rule(self) -> ChannelRule:
        return ChannelRule(self.name, self.address_column, self.counts_toward_limits)
