"""The row reader behind the bulk ingest: line numbers and ragged rows as CONTRACT §1 wants them."""
from __future__ import annotations

from datetime import date

from sqlalchemy import text

from arrears.ingest import ingest_delivery
from factories import landing

D = date(2026, 11, 16)
BILLS = [["B1", "A1", "2026-09", "100.00", "2026-10-01"]]


def test_quarantine_lines_count_blank_and_multiline_records(engine, tmp_path):
    folder = landing(tmp_path / "d", [["A1", "王伟", "residential", "", "", "", "", "", ""]], BILLS)
    with (folder / "accounts.csv").open("a", encoding="utf-8", newline="") as fh:
        fh.write("\n")                                                   # line 3: blank
        fh.write('A2,"two\nlines",residential,,,,,,\n')                  # lines 4-5
        fh.write("A3,坏,industrial,,,,,,\n")                              # line 6: bad enum
        fh.write("A4,短\n")                                               # line 7: too few fields
        fh.write("A5,长,residential,,,,,,,extra\n")                       # line 8: extra field
    result = ingest_delivery(engine, folder, D)
    with engine.connect() as conn:
        q = conn.execute(text("SELECT line, reason, raw FROM quarantine ORDER BY line")).all()
    assert [(line, reason.split(" ")[0]) for line, reason, _ in q] == [(6, "customer_class"),
                                                                       (7, "customer_class"),
                                                                       (8, "the")]
    assert q[1][2] == "A4,短,,,,,,,"          # the raw row, padded to the header
    assert q[2][1] == ("the row has 10 fields, the header 9 (an unquoted comma in a value? "
                       "quote the value)")
    assert q[2][2] == "A5,长,residential,,,,,,,extra"  # the extra field kept in the raw row
    assert result.rows["accounts.csv"] == 2   # A1, A2
