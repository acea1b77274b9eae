"""A batch's ``manifest.csv``: which file belongs to which account, with its sha256.

Auditors check a batch with ``python -m arrears.batches.manifest verify <batch folder>``: every
listed file must exist with the listed hash, and no file may sit in the folder unlisted. A file
purged under retention counts when its ``<name>.purged.json`` names the listed hash.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from airflow.sdk import ObjectStoragePath

from arrears.batches.store import MANIFEST, PURGED_SUFFIX, REPLAY_MARKER
from arrears.outbox_files import as_storage_path, sha256


class ManifestError(ValueError):
    """A batch whose files do not match its manifest."""


def read_manifest(folder: ObjectStoragePath) -> list[dict[str, str]]:
    path = folder / MANIFEST
    if not path.exists():
        raise ManifestError(f"{folder} has no {MANIFEST}: the batch is not complete (or was "
                            "never written); re-run the batch task for that cycle date")
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8"))))


def _purged_sha256(record) -> str | None:
    """The sha256 a retention purge recorded for the file it removed (None: no such record)."""
    if not record.exists():
        return None
    try:
        return str(json.loads(record.read_bytes())["sha256"])
    except (ValueError, KeyError, TypeError):
        return "(unreadable purge record)"


def verify(folder: ObjectStoragePath | str | Path) -> list[dict[str, str]]:
    """The manifest's rows, once every file matches; raises ManifestError listing every problem."""
    folder = as_storage_path(folder)
    rows = read_manifest(folder)
    problems, listed = [], {}
    for row in rows:
        listed.setdefault(row["file"], row["sha256"])
        if listed[row["file"]] != row["sha256"]:
            problems.append(f"{row['file']}: listed with two different hashes")
    for name, expected in sorted(listed.items()):
        member = folder / name
        if not member.exists():
            purged = _purged_sha256(folder / (name + PURGED_SUFFIX))
            if purged is None:
                problems.append(f"{name}: listed but missing")
            elif purged != expected:
                problems.append(f"{name}: purged, and its record says sha256 {purged} but the "
                                f"manifest says {expected}")
        elif (actual := sha256(member.read_bytes())) != expected:
            problems.append(f"{name}: sha256 {actual} but the manifest says {expected}")
    for member in folder.iterdir():
        if member.name.endswith(PURGED_SUFFIX) and member.name[:-len(PURGED_SUFFIX)] in listed:
            continue
        if member.name not in listed and member.name not in (MANIFEST, REPLAY_MARKER):
            problems.append(f"{member.name}: in the folder but not in the manifest")
    if problems:
        raise ManifestError(f"{folder}: " + "; ".join(problems))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "verify":
        print("usage: python -m arrears.batches.manifest verify <batch folder>", file=sys.stderr)
        return 2
    try:
        rows = verify(args[1])
    except ManifestError as exc:
        print(f"FAILED {exc}", file=sys.stderr)
        return 1
    files = len({r["file"] for r in rows})
    print(f"OK {args[1]}: {len(rows)} manifest rows, {files} files, every sha256 matches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
