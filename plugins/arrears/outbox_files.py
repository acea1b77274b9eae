"""Every file under ``<outbox>``, through Airflow's ``ObjectStoragePath``: where a run's files go,
and how a file is written, appended to or removed, on a local folder or an object store.

(Not to be confused with ``arrears.delivery.outbox``, the table of messages to send.)

The outbox is a local folder (``/srv/outbox``, ``file:///srv/outbox``) or an fsspec URL Airflow
knows a file system for (``s3://conn_id@bucket/outbox`` once the provider of that scheme is
installed; see README "Configuration"). Every writer and reader of the cycle's files (decisions,
summary, report, disconnection files, ``.eml`` and ``.jsonl`` of the file transports, the post
batch, lawyer letters and the bureau file, the agents' lists, audit anchors, the audit sweep, the
retention purge, the what-if) takes its folder from here.

Where a run's files go (one rule, :func:`run_folder`):

* a real run of cycle date D: ``<outbox>/<D>/``;
* a replay (``CycleRun.replay``: a backfill that may not contact, or a dry run):
  ``<outbox>/<D>/replays/<run_id>/``, so it never writes over what the real run of D handed over.

Writes are whole or nothing, where they were before and on object stores too:

* local: a temporary name in the same folder, fsync, then ``os.replace`` (atomic on one file
  system); a reader sees the old file or the new one;
* object store: one PUT of the whole object (an object store never shows a half-written object);
  there is no rename there, so nothing is staged under a temporary name.

Appends (the ``.jsonl`` files of the file transports) are durable when the call returns: locally
one ``write`` + fsync on a file opened for append; an object store has no append, so the object
is written again whole (one PUT per line). That costs the file's size per message: fine for the
embedded file transports (the demo, a small deployment), not for a large one, which configures
the channel's gateway connection instead.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow.sdk import ObjectStoragePath

if TYPE_CHECKING:
    from arrears.cycle.run import CycleRun

REPLAYS = "replays"
WHATIF = "whatif"
LOCAL_PROTOCOLS = ("", "file", "local")


def as_storage_path(location: str | Path | ObjectStoragePath) -> ObjectStoragePath:
    """A location as an ``ObjectStoragePath``: a URL as it is, a plain path made absolute."""
    if isinstance(location, ObjectStoragePath):
        return location
    text = str(location)
    if "://" not in text:
        text = "file://" + str(Path(text).resolve())
    return ObjectStoragePath(text)


def day_folder(root, cycle_date: date) -> ObjectStoragePath:
    """``<outbox>/<D>/``: the files of D's real record (messages sent, notices served, anchors)."""
    return as_storage_path(root) / cycle_date.isoformat()


def run_folder(root, run: CycleRun) -> ObjectStoragePath:
    """Where a cycle run writes its files: ``<outbox>/<D>/`` for a real run,
    ``<outbox>/<D>/replays/<run_id>/`` for a replay, which must never replace what the real
    run of D handed over (the run id keeps two replays of D apart too)."""
    folder = day_folder(root, run.cycle_date)
    return folder / REPLAYS / folder_name(run.run_id) if run.replay else folder


def whatif_folder(root, whatif_id: str) -> ObjectStoragePath:
    """``<outbox>/whatif/<id>/``: a what-if's files, beside the day folders, never in them."""
    return as_storage_path(root) / WHATIF / folder_name(whatif_id)


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.~:+-]+")


def folder_name(run_id: str) -> str:
    """One folder level for a run id that anyone may choose through the REST API: a run id
    such as ``..`` or ``a/../../2026-11-16`` must never lead a replay's files into the real
    day's folder. Plain ids stay as they are; anything else is percent-encoded (and ``.``/``..``
    get their dots encoded), so different ids still get different folders."""
    if _PLAIN_NAME.fullmatch(run_id) and run_id.strip(".") != "":
        return run_id
    return quote(run_id, safe="").replace(".", "%2E") or "%00"


def is_local(path: ObjectStoragePath) -> bool:
    return path.protocol in LOCAL_PROTOCOLS


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_file(path, data: bytes) -> ObjectStoragePath:
    """One file, whole or not at all (see the module's docstring); returns its path."""
    path = as_storage_path(path)
    if is_local(path):
        _write_local(Path(path.path), data)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return path


def _write_local(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def appending(path) -> Iterator[Callable[[bytes], None]]:
    """``add(line)`` appends one whole line (ending in ``\\n``), durable when it returns.

    A file whose last line was torn by a crash (no final newline) gets that line ended first, so
    the next line parses on its own."""
    path = as_storage_path(path)
    if is_local(path):
        local = Path(path.path)
        local.parent.mkdir(parents=True, exist_ok=True)
        torn = local.exists() and local.stat().st_size > 0 and not _ends_with_newline(local)
        with local.open("ab") as fh:
            def add(line: bytes) -> None:
                nonlocal torn
                if torn:
                    line, torn = b"\n" + line, False
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            yield add
        return
    body = path.read_bytes() if path.exists() else b""
    if body and not body.endswith(b"\n"):
        body += b"\n"

    def put(line: bytes) -> None:
        nonlocal body
        body += line
        write_file(path, body)  # no append on an object store: the whole object, one PUT
    yield put


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def remove_tree(path) -> None:
    path = as_storage_path(path)
    if is_local(path):
        shutil.rmtree(path.path, ignore_errors=True)
    elif path.exists():
        path.fs.rm(path.path, recursive=True)


def files_under(folder) -> Iterator[ObjectStoragePath]:
    """Every file below ``folder`` (any depth), in name order."""
    folder = as_storage_path(folder)
    if not folder.exists():
        return
    for member in sorted(folder.iterdir(), key=lambda p: p.name):
        if member.is_dir():
            yield from files_under(member)
        else:
            yield member
