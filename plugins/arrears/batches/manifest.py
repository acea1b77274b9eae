"""A batch's ``manifest.csv``: which file belongs to which account, with its sha256.

Auditors check a batch with ``python -m arrears.batches.manifest verify <batch folder>``: every
listed file must exist with the listed hash, and no file may sit in the folder unlisted.
"""
from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from airflow.sdk import ObjectStoragePath

from arrears.batches.store import MANIFEST, REPLAY_MARKER, as_storage_path, sha256


class ManifestError(ValueError):
    """A batch whose files do not match its manifest."""


def read_manifest(folder: ObjectStoragePath) -> list[dict[str, str]]:
    path = folder / MANIFEST
    if not path.exists():
        raise ManifestError(f"{folder} has no {MANIFEST}: the batch is not complete (or was "
                            "never written); re-run the batch task for that cycle date")
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8"))))


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
            problems.append(f"{name}: listed but missing")
        elif (actual := sha256(member.read_bytes())) != expected:
            problems.append(f"{name}: sha256 {actual} but the manifest says {expected}")
    for member in folder.iterdir():
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
