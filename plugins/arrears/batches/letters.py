"""Lawyer letters (律师函): one A4 PDF per account with ``lawyer_letter`` in D's decision, in the
account's language, plus ``manifest.csv`` (CONTRACT §3).

ReportLab draws them (about 200 one-page CJK letters a second per core here; the font is parsed
once per process and subset per letter). The texts come from
include/templates/letters/lawyer_letter.toml. Bytes are deterministic: ReportLab's invariant mode
fixes the creation date and document id, the metadata is fixed, and nothing in a letter depends
on the clock or on the order the letters were rendered in.
"""
from __future__ import annotations

import io
import logging
import os
import re
import tomllib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from hashlib import sha1
from pathlib import Path

from typing import TYPE_CHECKING

from markupsafe import Markup, escape

from arrears.money import format_fen
from arrears.paths import TEMPLATES_DIR
from arrears.processes import start_pool
from arrears.records.decided import Decided
from arrears.utility import identity

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

# Worker processes import this module to draw letters: it must not pull in Airflow or the
# database layer at import time (that costs seconds per worker), hence the local imports below.

log = logging.getLogger(__name__)

CJK_FONT_PACKAGE = "fonts-wqy-zenhei"
CJK_FONT_FILE = Path(os.environ.get("ARREARS_CJK_FONT", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"))
CJK = "ArrearsCJK"
TEMPLATE = TEMPLATES_DIR / "letters" / "lawyer_letter.toml"
MANIFEST_COLUMNS = ("account_id", "file", "outstanding", "late_fee", "sha256")
LETTERS_PER_TASK = 50            # letters per task handed to a worker process
PARALLEL_FROM = 200   # below this many letters, starting worker processes costs more than it saves
CN_CANNOT_START = "，、；：！？）」』】》〉”’％"
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December")


class LetterFontError(RuntimeError):
    """The CJK font the letters embed is not installed."""


@dataclass(frozen=True)
class LetterBill:
    bill_period: str
    open_fen: int
    due_date: date
    days_overdue: int
    late_fee_fen: int


@dataclass(frozen=True)
class Letter:
    cycle_date: date
    account_id: str
    holder_name: str
    service_address: str
    language: str
    dpd: int
    outstanding_fen: int
    late_fee_fen: int
    bills: tuple[LetterBill, ...]
    late_fee_waived: bool = False     # relief scheme (CONTRACT §6): shown, not demanded

    @property
    def reference(self) -> str:
        return f"LL-{self.cycle_date:%Y%m%d}-{self.account_id}"


def file_name(account_id: str) -> str:
    """A safe, unique file name for any account id (ids with other characters get a hash)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", account_id)
    if safe != account_id or safe.startswith("."):  # no hidden files, no "..": staging uses dots
        safe = f"{safe.lstrip('.') or '_'}-{sha1(account_id.encode('utf-8')).hexdigest()[:8]}"
    return f"{safe}.pdf"


def register_cjk_font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.lib.fonts import addMapping
    if CJK in pdfmetrics.getRegisteredFontNames():
        return
    if not CJK_FONT_FILE.is_file():
        raise LetterFontError(
            f"the letters' CJK font {CJK_FONT_FILE} is missing: install the Debian package "
            f"{CJK_FONT_PACKAGE} (`make install` runs scripts/setup-system.sh {CJK_FONT_PACKAGE}, "
            f"or `apt-get install {CJK_FONT_PACKAGE}`), or point ARREARS_CJK_FONT at the file")
    pdfmetrics.registerFont(TTFont(CJK, str(CJK_FONT_FILE), subfontIndex=0))
    # ReportLab's line breaking knows the Japanese rule "no closing punctuation at a line start"
    # but not the Chinese full-width comma and friends: add them, or a line may open with "，".
    from reportlab.lib import textsplit
    from reportlab.platypus import paragraph
    for module in (textsplit, paragraph):  # each holds its own copy of the rule
        module.ALL_CANNOT_START += "".join(
            ch for ch in CN_CANNOT_START if ch not in module.ALL_CANNOT_START)
    for bold in (0, 1):  # the font has one weight: <b> keeps the face instead of failing
        for italic in (0, 1):
            addMapping(CJK, bold, italic, CJK)


@lru_cache(maxsize=1)
def _texts() -> dict:
    from jinja2 import Environment, StrictUndefined
    raw = tomllib.loads(TEMPLATE.read_text(encoding="utf-8"))
    env = Environment(autoescape=True, undefined=StrictUndefined)
    compiled = {}
    for lang in ("zh-CN", "en"):
        compiled[lang] = {k: env.from_string(v) if isinstance(v, str) else v
                          for k, v in raw[lang].items()}
    utility = identity()
    bank = {"beneficiary_zh": utility["name"]["zh-CN"], "beneficiary_en": utility["name"]["en"],
            **utility["bank"]}
    return {"deadline_days": int(raw["deadline_days"]), "bank": bank, **compiled}


def amount(fen: int) -> str:
    """``123456`` -> ``"1,234.56"``: money as the letters print it."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def long_date(day: date, language: str) -> str:
    if language == "zh-CN":
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {MONTHS_EN[day.month - 1]} {day.year}"


def _needs_cjk(text: str) -> bool:
    try:
        text.encode("cp1252")  # what ReportLab's standard fonts can show
        return False
    except UnicodeEncodeError:
        return True


def _value(text: str, language: str) -> Markup:
    """A data value as paragraph markup; in English letters, Chinese in it uses the CJK font."""
    if language != "zh-CN" and _needs_cjk(text):
        return Markup(f'<font name="{CJK}">') + escape(text) + Markup("</font>")
    return escape(text)


def render_letter(letter: Letter) -> bytes:
    """The letter as PDF bytes, the same bytes for the same letter every time."""
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_CENTER, TA_RIGHT
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    register_cjk_font()
    texts = _texts()
    lang = letter.language if letter.language in ("zh-CN", "en") else "zh-CN"
    t = texts[lang]
    font = CJK if lang == "zh-CN" else "Helvetica"
    deadline = letter.cycle_date + timedelta(days=texts["deadline_days"])
    values = {
        "holder": _value(letter.holder_name, lang), "address": _value(letter.service_address or "-", lang),
        "account_id": _value(letter.account_id, lang), "reference": _value(letter.reference, lang),
        "letter_date": long_date(letter.cycle_date, lang), "deadline": long_date(deadline, lang),
        "outstanding": amount(letter.outstanding_fen), "late_fee": amount(letter.late_fee_fen),
        "total_due": amount(letter.outstanding_fen + (0 if letter.late_fee_waived else letter.late_fee_fen)),
        "dpd": letter.dpd,
        "bank": texts["bank"],
    }

    def say(key: str, **extra) -> str:
        return t[key].render(**values, **extra)

    body = ParagraphStyle("body", fontName=font, fontSize=10, leading=15, spaceAfter=6,
                          wordWrap="CJK" if lang == "zh-CN" else None)
    small = ParagraphStyle("small", parent=body, fontSize=8.5, leading=12, spaceAfter=2)
    heading = ParagraphStyle("heading", parent=body, fontSize=11, leading=16, spaceBefore=4,
                             spaceAfter=3)
    title = ParagraphStyle("title", parent=body, fontSize=20, leading=26, alignment=TA_CENTER,
                           spaceAfter=4)
    right = ParagraphStyle("right", parent=body, alignment=TA_RIGHT, spaceAfter=0)

    def header_footer(canvas, doc) -> None:
        width, height = A4
        canvas.saveState()
        canvas.setFont(CJK if lang == "zh-CN" else "Helvetica-Bold", 16)
        canvas.drawString(20 * mm, height - 20 * mm, say("firm"))
        canvas.setFont(CJK if lang == "zh-CN" else "Helvetica", 8.5)
        canvas.drawString(20 * mm, height - 26 * mm, say("firm_address"))
        canvas.setStrokeColor(colors.HexColor("#8b1a1a"))
        canvas.setLineWidth(1.2)
        canvas.line(20 * mm, height - 29 * mm, width - 20 * mm, height - 29 * mm)
        canvas.setFont(CJK if lang == "zh-CN" else "Helvetica", 8)
        canvas.setFillColor(colors.grey)
        canvas.drawString(20 * mm, 12 * mm, letter.reference)
        canvas.drawRightString(width - 20 * mm, 12 * mm, say("page", page=doc.page))
        canvas.restoreState()

    rows = [list(t["columns"])]
    for b in letter.bills:
        rows.append([b.bill_period, amount(b.open_fen), b.due_date.isoformat(),
                     str(b.days_overdue), amount(b.late_fee_fen)])
    rows.append([say("total"), amount(letter.outstanding_fen), "", "", amount(letter.late_fee_fen)])
    table = Table(rows, colWidths=[30 * mm, 38 * mm, 32 * mm, 28 * mm, 38 * mm], repeatRows=1)
    table.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), font),
        ("FONTNAME", (0, 0), (-1, 0), CJK if lang == "zh-CN" else "Helvetica-Bold"),
        ("FONTNAME", (0, -1), (-1, -1), CJK if lang == "zh-CN" else "Helvetica-Bold"),
        ("FONTSIZE", (0, 0), (-1, -1), 9),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
        ("LINEABOVE", (0, 0), (-1, 0), 0.8, colors.black),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
        ("LINEABOVE", (0, -1), (-1, -1), 0.5, colors.black),
        ("LINEBELOW", (0, -1), (-1, -1), 0.8, colors.black),
        ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]))

    story = [
        Paragraph(f"{say('reference_label')}：{values['reference']}" if lang == "zh-CN"
                  else f"{say('reference_label')}: {values['reference']}", right),
        Paragraph(f"{say('date_label')}：{values['letter_date']}" if lang == "zh-CN"
                  else f"{say('date_label')}: {values['letter_date']}", right),
        Spacer(1, 4 * mm),
        Paragraph(say("to"), body), Paragraph(say("address"), small),
        Paragraph(f"{say('account_label')}：{values['account_id']}" if lang == "zh-CN"
                  else f"{say('account_label')}: {values['account_id']}", small),
        Spacer(1, 5 * mm),
        Paragraph(say("title"), title), Paragraph(f"<b>{say('subject')}</b>", ParagraphStyle(
            "subject", parent=body, alignment=TA_CENTER, spaceAfter=10)),
        Paragraph(say("intro"), body), Paragraph(say("facts"), body),
        table,
    ]
    if letter.late_fee_fen != sum(b.late_fee_fen for b in letter.bills):
        story.append(Paragraph(say("minimum_note"), small))
    if letter.late_fee_waived:
        story.append(Paragraph(say("waived_note"), small))
    story += [
        Spacer(1, 3 * mm), Paragraph(say("demand_waived" if letter.late_fee_waived else "demand"), body),
        Paragraph(f"<b>{say('payment_title')}</b>", heading), Paragraph(say("payment"), body),
        Paragraph(f"<b>{say('legal_title')}</b>", heading), Paragraph(say("legal"), body),
        Paragraph(say("consequence"), body), Spacer(1, 8 * mm),
        Paragraph(say("signature"), right), Paragraph(say("lawyer"), ParagraphStyle(
            "lawyer", parent=small, alignment=TA_RIGHT)),
        Paragraph(say("seal"), right), Paragraph(values["letter_date"], right),
    ]
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=34 * mm,
        bottomMargin=20 * mm, invariant=1, title=letter.reference, author=say("firm"),
        subject=say("subject"), creator="arrears lawyer letters",
        producer="arrears (ReportLab)", lang=lang)
    doc.build(story, onFirstPage=header_footer, onLaterPages=header_footer)
    return out.getvalue()


def render_chunk(letters: list[Letter]) -> list[bytes]:
    return [render_letter(letter) for letter in letters]


def iter_letters(conn: Connection, cycle_date: date, decided: Decided | None = None
                 ) -> Iterator[Letter]:
    """D's letters in account order, streamed (``decided``: whose decisions; the real ones)."""
    from arrears.db.values import as_date
    from arrears.cycle.grouping import AccountStream
    dialect = conn.dialect.name
    decided = decided or Decided(cycle_date)
    d = decided.params()
    bills = AccountStream(conn.execute(decided.sql("batches/letter_bills.sql", dialect), d))
    for aid, holder, address, language, dpd, outstanding, fee, waived in conn.execute(
            decided.sql("batches/letter_accounts.sql", dialect), d).all():
        rows = tuple(LetterBill(p, o, as_date(due), days, f)
                     for _, p, o, due, days, f in bills.take(aid))
        yield Letter(cycle_date, aid, holder, address or "", language or "zh-CN", dpd,
                     outstanding, fee, rows, bool(waived))


def _chunks(letters: Iterator[Letter], size: int) -> Iterator[list[Letter]]:
    chunk: list[Letter] = []
    for letter in letters:
        chunk.append(letter)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _worker_count() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), int(os.environ.get("ARREARS_LETTER_WORKERS", "64"))))


def rendered(letters: list[Letter], workers: int | None = None) -> Iterator[tuple[Letter, bytes]]:
    """Each letter with its PDF, in the given order; many letters are drawn on every core."""
    workers = _worker_count() if workers is None else workers
    pool = (start_pool(workers, register_cjk_font, what="lawyer letters")
            if workers > 1 and len(letters) >= PARALLEL_FROM else None)
    if pool is None:
        register_cjk_font()
        for letter in letters:
            yield letter, render_letter(letter)
        return
    with pool:
        pending: deque = deque()
        for chunk in _chunks(iter(letters), LETTERS_PER_TASK):
            pending.append((chunk, pool.submit(render_chunk, chunk)))
            if len(pending) > 2 * workers:  # bounded: memory stays flat for any batch size
                chunk, future = pending.popleft()
                yield from zip(chunk, future.result())
        while pending:
            chunk, future = pending.popleft()
            yield from zip(chunk, future.result())


@dataclass
class LetterBatch:
    letters: int
    folder: str
    seconds: float


def write_lawyer_letters(engine: Engine, day_folder, cycle_date: date, replay: bool = False,
                         workers: int | None = None, decided: Decided | None = None) -> LetterBatch:
    """Render D's letters into ``<day_folder>/lawyer_letters/`` and publish the batch whole."""
    import time

    from arrears.batches.store import BatchFolder
    from arrears.spreadsheet import csv_bytes
    started = time.monotonic()
    register_cjk_font()  # fail before anything is staged when the font is missing
    with engine.connect() as conn:
        letters = list(iter_letters(conn, cycle_date, decided))
    manifest_rows = []
    with BatchFolder(day_folder, "lawyer_letters", replay, cycle_date) as batch:
        for n, (letter, pdf) in enumerate(rendered(letters, workers), start=1):
            name = file_name(letter.account_id)
            digest = batch.add(name, pdf)
            manifest_rows.append((letter.account_id, name, format_fen(letter.outstanding_fen),
                                  format_fen(letter.late_fee_fen), digest))
            if n % 1000 == 0:
                log.info("lawyer letters: %d of %d rendered", n, len(letters))
        final = batch.commit(csv_bytes(MANIFEST_COLUMNS, manifest_rows))
    return LetterBatch(len(manifest_rows), str(final), round(time.monotonic() - started, 3))
