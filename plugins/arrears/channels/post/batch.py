"""The post channel's transport: PDFs and manifest.csv under ``<outbox>/<D>/post/``.

Each message's PDF is written atomically under a name from its account id (the one message per
channel per account per day makes it unique); the manifest is rewritten, sorted, at the end of
every session from what it already listed plus what the session wrote. A resend after a crash
writes the same bytes, so the batch is the same whatever happened.
"""
from __future__ import annotations

import csv
import hashlib
import io
from contextlib import contextmanager
from datetime import date

from arrears.batches.letters import CJK, file_name, register_cjk_font
from arrears.outbox_files import as_storage_path, day_folder, write_file
from arrears.spreadsheet import csv_bytes

MANIFEST_COLUMNS = ("account_id", "file", "idem_key", "sha256")


def render_notice(msg) -> bytes:
    """The notice as PDF bytes: address block, title, the message's paragraphs."""
    from markupsafe import escape
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    register_cjk_font()  # one font for both languages: it has Latin glyphs too
    body = ParagraphStyle("body", fontName=CJK, fontSize=10.5, leading=16, spaceAfter=6,
                          wordWrap="CJK")
    title = ParagraphStyle("title", parent=body, fontSize=15, leading=22, spaceBefore=8,
                           spaceAfter=10)
    blocks = msg.body_text.strip().split("\n\n")
    address = [Paragraph(str(escape(line)), body) for line in blocks[0].splitlines()]
    story = [*address, Spacer(1, 12 * mm), Paragraph(str(escape(msg.subject)), title)]
    for block in blocks[1:]:
        story += [Paragraph(str(escape(line)), body) for line in block.splitlines() if line.strip()]
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4, leftMargin=22 * mm, rightMargin=22 * mm, topMargin=40 * mm,
                      bottomMargin=20 * mm, invariant=1, title=msg.subject, author="arrears",
                      subject=msg.idem_key, creator="arrears post notices",
                      producer="arrears (ReportLab)").build(story)
    return out.getvalue()


class PostBatchTransport:
    name = "post_pdf"

    def __init__(self, outbox):
        self.outbox = as_storage_path(outbox)

    @contextmanager
    def session(self, cycle_date: str):
        folder = day_folder(self.outbox, date.fromisoformat(cycle_date)) / "post"
        manifest = folder / "manifest.csv"
        rows = {}
        if manifest.exists():
            for row in csv.DictReader(io.StringIO(manifest.read_text(encoding="utf-8"))):
                rows[row["file"]] = row
        written = []

        def send(msg) -> str:
            pdf = render_notice(msg)
            name = file_name(msg.account_id)
            write_file(folder / name, pdf)
            rows[name] = {"account_id": msg.account_id, "file": name, "idem_key": msg.idem_key,
                          "sha256": hashlib.sha256(pdf).hexdigest()}
            written.append(name)
            return f"file post/{name}"
        try:
            yield send
        finally:
            if written:
                write_file(manifest, csv_bytes(MANIFEST_COLUMNS, (
                    [rows[f][c] for c in MANIFEST_COLUMNS] for f in sorted(rows))))
