"""Customer messages from the templates of include/templates/messages/.

One message per channel per account per day carries every kind due that day (CONTRACT §2). The
wording lives in ``<language>/parts.j2``: one macro per paragraph, used by the HTML email (an
autoescaping environment, so customer-supplied fields arrive escaped), the plain-text email and
the SMS (non-escaping environment: plain text must not show ``&lt;``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from arrears.model import LANGUAGES
from arrears.money import format_fen
from arrears.paths import TEMPLATES_DIR, UTILITY_FILE
from arrears.utility import identity

MESSAGES_DIR = TEMPLATES_DIR / "messages"
# Kinds that talk about money owed beyond the balance: the email lists the bills and their fees.
FEE_KINDS = frozenset({"formal_notice", "credit_prenotice", "disconnection_notice"})


@dataclass(frozen=True)
class BillLine:
    bill_period: str
    due_date: str
    open: str
    days: int
    fee: str


@dataclass(frozen=True)
class MessageData:
    """Everything a message may say; all of it about the account holder alone."""
    account_id: str
    holder_name: str
    language: str
    kinds: tuple[str, ...]
    as_of: str
    outstanding: str
    late_fee: str
    dpd: int
    due_date: str = ""
    service_address: str = ""
    bills: tuple[BillLine, ...] = ()
    report_from: str = ""
    earliest_disconnection: str = ""
    cancelled_served_on: str = ""
    utility_name: str = ""
    sms_signature: str = ""
    hotline: str = ""
    pay_url: str = ""
    segment: str = "new"            # CONTRACT §6: the wording of <language>/segments.j2
    late_fee_waived: bool = False   # the fee is shown, as waived (relief scheme)
    next_step: str = ""             # wilful: the next step of due process ...
    next_step_on: str = ""          # ... and its date

    @property
    def fee_due(self) -> bool:
        """The message talks about the late fee (every kind but a friendly reminder)."""
        return bool(FEE_KINDS & set(self.kinds))

    @property
    def show_fees(self) -> bool:
        """The bills are listed: with the fee kinds, and always for a disputing customer (§6)."""
        return (self.fee_due or self.segment == "disputing") and bool(self.bills)


@dataclass(frozen=True)
class Rendered:
    template: str
    template_version: str
    subject: str
    text: str
    html: str = ""
    content_sha256: str = field(default="")


def sender() -> dict:
    """Who the messages come from: the utility's identity (include/utility.toml)."""
    return identity()


def format_day(day: date | None, language: str) -> str:
    if day is None:
        return ""
    if language == "en":
        return f"{day.day} {day:%B %Y}"
    return f"{day.year}年{day.month}月{day.day}日"


def message_data(*, account_id: str, holder_name: str, language: str, kinds, cycle_date: date,
                 outstanding_fen: int, late_fee_fen: int, dpd: int, service_address: str = "",
                 bills=(), report_from: date | None = None,
                 earliest_disconnection: date | None = None,
                 cancelled_served_on: date | None = None, segment: str = "new",
                 late_fee_waived: bool = False, next_step: str = "",
                 next_step_on: date | None = None) -> MessageData:
    """``bills``: (bill_period, due_date, open_fen, days_overdue, late_fee_fen), oldest first."""
    lang = language if language in LANGUAGES else "zh-CN"
    s = sender()
    lines = tuple(BillLine(p, format_day(due, lang), format_fen(open_fen), days, format_fen(fee))
                  for p, due, open_fen, days, fee in bills)
    return MessageData(
        account_id=account_id, holder_name=holder_name, language=lang, kinds=tuple(kinds),
        as_of=format_day(cycle_date, lang), outstanding=format_fen(outstanding_fen),
        late_fee=format_fen(late_fee_fen), dpd=dpd,
        due_date=format_day(bills[0][1], lang) if bills else "",
        service_address=service_address, bills=lines,
        report_from=format_day(report_from, lang),
        earliest_disconnection=format_day(earliest_disconnection, lang),
        cancelled_served_on=format_day(cancelled_served_on, lang),
        utility_name=s["name"][lang], sms_signature=s["sms_signature"][lang],
        hotline=s["hotline"], pay_url=s["pay_url"], segment=segment,
        late_fee_waived=late_fee_waived, next_step=next_step,
        next_step_on=format_day(next_step_on, lang))


@lru_cache(maxsize=2)
def _environment(html: bool) -> Environment:
    # auto_reload off: templates do not change under a running task, and checking each one's
    # file at every render (an os.stat per template and import) was a tenth of rendering.
    return Environment(loader=FileSystemLoader(str(MESSAGES_DIR)), autoescape=html,
                       undefined=StrictUndefined, keep_trailing_newline=False, auto_reload=False)


@lru_cache(maxsize=32)
def template_version(channel: str, language: str) -> str:
    """sha256 prefix over every source a channel's message of that language is made from."""
    from arrears.channels.registry import channel as channel_named
    digest = hashlib.sha256()
    for name in (*channel_named(channel).templates, f"{language}/parts.j2", f"{language}/segments.j2"):
        digest.update(name.encode() + b"\0" + (MESSAGES_DIR / name).read_bytes() + b"\0")
    digest.update(b"utility.toml\0" + UTILITY_FILE.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def text_from(name: str, data: MessageData) -> str:
    """A plain-text template (no escaping) rendered for ``data``, one trailing newline."""
    return _environment(False).get_template(name).render(m=data).strip() + "\n"


def html_from(name: str, data: MessageData) -> str:
    """An HTML template (customer-supplied fields escaped) rendered for ``data``."""
    return _environment(True).get_template(name).render(m=data).strip() + "\n"


def fields_from(name: str, data: MessageData) -> dict[str, str]:
    """A template of named one-line fields (its ``fields`` list, one macro each), rendered."""
    module = _environment(False).get_template(name).make_module({"m": data})
    return {f: " ".join(str(getattr(module, f)(data)).split()) for f in module.fields}


def parts(data: MessageData):
    """The wording macros of the message's language (``<language>/parts.j2``), unescaped."""
    return _environment(False).get_template(f"{data.language}/parts.j2").module


def subject_line(data: MessageData) -> str:
    return str(parts(data).subject(data))


def render(channel: str, data: MessageData) -> Rendered:
    """The channel's message for ``data``: its own folder under arrears/channels/ composes it."""
    from arrears.channels.registry import channel as channel_named
    subject, text_body, html_body = channel_named(channel).compose(data)
    subject = " ".join(str(subject).split())  # one header line, whatever the holder name holds
    content = hashlib.sha256("\0".join((subject, text_body, html_body)).encode()).hexdigest()
    return Rendered(template=f"messages/{channel}/{data.language}",
                    template_version=template_version(channel, data.language),
                    subject=subject, text=text_body, html=html_body, content_sha256=content)
