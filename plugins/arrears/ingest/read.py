"""Reading one CSV file of the extract: encoding, header check, rows with their line numbers."""
from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from pathlib import Path

ENCODINGS = {"utf-8": "utf-8-sig", "utf8": "utf-8-sig", "gb18030": "gb18030", "gbk": "gb18030"}


class FileError(ValueError):
    """A file that cannot be ingested at all: it names the file and the problem."""


def codec(encoding: str) -> str:
    try:
        return ENCODINGS[encoding.lower()]
    except KeyError:
        raise FileError(f"encoding {encoding!r} is not supported: use utf-8 or gb18030") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_rows(path: Path, required: tuple[str, ...], encoding: str = "utf-8") -> Iterator[tuple[int, dict]]:
    """Yield (line number, row) for each record; raise FileError for an unreadable file or a
    missing required column. Line numbers count the header as line 1."""
    try:
        with path.open("r", encoding=codec(encoding), newline="") as fh:
            # csv.reader plus dict(zip()) is DictReader without its per-row Python overhead.
            reader = csv.reader(fh, strict=True)  # broken quoting is an error, not data
            header = [h.strip() for h in next(reader, None) or []]
            missing = [c for c in required if c not in header]
            if not header:
                raise FileError(f"{path.name}: the file is empty (no header row)")
            if missing:
                raise FileError(f"{path.name}: required column(s) {', '.join(missing)} missing "
                                f"(header has: {', '.join(header)})")
            width = len(header)
            line = reader.line_num
            for fields in reader:
                start, line = line + 1, reader.line_num
                if not fields:  # a blank line is no record
                    continue
                row = dict(zip(header, fields))
                if len(fields) > width:
                    row["__extra__"] = fields[width:]
                elif len(fields) < width:
                    row.update(dict.fromkeys(header[len(fields):]))
                yield start, row
    except UnicodeDecodeError as exc:
        raise FileError(f"{path.name}: not valid {encoding} at byte {exc.start} "
                        f"(if the file is GB18030/GBK, run with encoding=gb18030)") from None
    except csv.Error as exc:
        raise FileError(f"{path.name}: cannot be parsed as CSV: {exc}") from None
