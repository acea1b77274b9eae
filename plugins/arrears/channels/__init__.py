"""Channels as plug-ins: every sub-folder of this package is one channel (CONTRACT §4, §7).

A channel folder's ``__init__.py`` defines ``CHANNEL``, a :class:`arrears.channels.base.Channel`
saying everything the cycle needs to know about it: its address column and validation, its
opt-out hold, its templates, its transport (Airflow connection and embedded file default), which
failures are permanent, whether it counts toward the contact limits. The registry
(:mod:`arrears.channels.registry`) is what the policy, the outbox, rendering, dispatch and the
agents' lists read; adding a channel is one folder here plus its templates.

This module only *names* the channels (the folder names, in alphabetical order), without importing
them: ``arrears.model`` needs the names and everything else imports ``arrears.model``.
"""
from __future__ import annotations

import pkgutil
from pathlib import Path

NAMES: tuple[str, ...] = tuple(sorted(
    m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
    if m.ispkg and not m.name.startswith("_")))
