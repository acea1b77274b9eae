"""The quarantine of a cycle date as a spreadsheet for ops: ``arrears quarantine D [--out F]``.

One row per quarantined row (file, line, reason, the row as delivered): what the billing team
needs to correct the extract. Written with the formula-safe writer: the raw rows are exactly the
customer-supplied text that must never run in the reader's spreadsheet.
"""
from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, text

from arrears.spreadsheet import csv_bytes

COLUMNS = ("cycle_date", "file", "line", "reason", "raw")


def export(engine: Engine, cycle_date: date) -> tuple[int, bytes]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT file, line, reason, raw FROM quarantine WHERE cycle_date = :d"),
            {"d": cycle_date}).all()
    rows.sort(key=lambda r: (r[0], r[1]))
    return len(rows), csv_bytes(COLUMNS, ((cycle_date.isoformat(), *r) for r in rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arrears quarantine",
                                     description="export the rows ingest quarantined on a date")
    parser.add_argument("cycle_date", type=date.fromisoformat)
    parser.add_argument("--out", type=Path, help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    from arrears.db import connect
    from arrears.settings import Settings
    count, body = export(connect(Settings.load().db_url), args.cycle_date)
    if args.out is None:
        sys.stdout.write(body.decode("utf-8"))
    else:
        args.out.write_bytes(body)
    print(f"{count} quarantined rows of {args.cycle_date}"
          + (f" written to {args.out}" if args.out else ""), file=sys.stderr)
    return 0
