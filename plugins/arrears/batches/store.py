"""Batches published whole under the run's folder of the outbox (arrears.outbox_files says where
and how a file is written), on a local folder or an object store.

A batch folder (``lawyer_letters/``, ``credit_report/``) is complete exactly when its
``manifest.csv`` is present, and the manifest is always the last file to appear:

* local folder: the batch is built in a hidden staging folder next to it and swapped in with
  ``rename`` (atomic on one file system), so a reader sees the old batch or the new one;
* object store (no folder rename there): the old manifest is deleted first, then the files are
  copied in, then the manifest last; a crash in between leaves a folder without manifest, which
  by the rule above is not a batch.
"""
from __future__ import annotations

import os
import shutil
import uuid
from datetime import date
from pathlib import Path

from airflow.sdk import ObjectStoragePath

from arrears.outbox_files import is_local, remove_tree, sha256

MANIFEST = "manifest.csv"
REPLAY_MARKER = "REPLAY"
# A file purged under retention (arrears.retention) leaves <name>.purged.json with its sha256.
PURGED_SUFFIX = ".purged.json"
REPLAY_NOTE = ("This batch was produced by a replay (backfill) of cycle date {d}. Nothing in it "
               "was sent; do not hand it over.\n")


def _write_member(path: ObjectStoragePath, data: bytes) -> None:
    if not is_local(path):
        path.write_bytes(data)
        return
    # On disk the bytes must be durable before the rename publishes them: after a power cut a
    # renamed folder of never-flushed files would be a complete-looking batch of empty files.
    with open(path.path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class BatchFolder:
    """Files written into a staging folder and published together by ``commit(manifest)``.

    Leaving the ``with`` block by an exception publishes nothing: the previous complete batch
    (if any) stays as it was.
    """

    def __init__(self, parent: ObjectStoragePath, name: str, replay: bool = False,
                 cycle_date: date | None = None):
        self.parent, self.name = parent, name
        self.final = parent / name
        self.token = uuid.uuid4().hex[:12]
        self.staging = parent / f".{name}.{self.token}.partial"
        self.replay, self.cycle_date = replay, cycle_date
        self.committed = False

    def __enter__(self) -> BatchFolder:
        self.parent.mkdir(parents=True, exist_ok=True)
        # Leftovers of crashed attempts: never visible as batches, removed before a new one.
        for stale in self.parent.iterdir():
            if stale.name.startswith(f".{self.name}.") and stale.name.endswith((".partial", ".old")):
                remove_tree(stale)
        self.staging.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self.committed:
            remove_tree(self.staging)

    def add(self, file_name: str, data: bytes) -> str:
        """Stage one file; returns its sha256."""
        if file_name in (MANIFEST, REPLAY_MARKER) or "/" in file_name:
            raise ValueError(f"{file_name!r} is not a batch member name")
        _write_member(self.staging / file_name, data)
        return sha256(data)

    def commit(self, manifest: bytes) -> ObjectStoragePath:
        if self.replay:
            _write_member(self.staging / REPLAY_MARKER,
                          REPLAY_NOTE.format(d=self.cycle_date).encode("utf-8"))
        _write_member(self.staging / MANIFEST, manifest)
        if is_local(self.final):
            self._swap_local()
        else:
            self._copy_remote()
        self.committed = True
        return self.final

    def _swap_local(self) -> None:
        final, staging = Path(self.final.path), Path(self.staging.path)
        old = final.with_name(f".{self.name}.{self.token}.old")
        if final.exists():
            os.rename(final, old)
        os.rename(staging, final)
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the renames survive a power cut
        finally:
            os.close(fd)
        shutil.rmtree(old, ignore_errors=True)

    def _copy_remote(self) -> None:
        manifest = self.final / MANIFEST
        if manifest.exists():
            manifest.unlink()  # from here on the old batch no longer counts as complete
        if self.final.exists():
            for member in self.final.iterdir():
                member.unlink()
        self.final.mkdir(parents=True, exist_ok=True)
        for member in sorted(self.staging.iterdir(), key=lambda p: p.name):
            if member.name != MANIFEST:
                member.copy(self.final / member.name)
        (self.staging / MANIFEST).copy(manifest)
        remove_tree(self.staging)


def is_complete(folder: ObjectStoragePath) -> bool:
    return (folder / MANIFEST).exists()
