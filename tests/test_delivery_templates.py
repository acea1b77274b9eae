"""The customer messages: every kind in both languages says what it must, escapes what the
customer supplied, threatens nobody and names nobody but the holder."""
from __future__ import annotations

import itertools
from datetime import date

import pytest

from arrears.delivery.render import MESSAGES_DIR, message_data, render
from arrears.delivery.transports import OutboxMessage, build_email
from arrears.model import LANGUAGES, MESSAGE_KINDS, SEGMENTS

D = date(2026, 11, 16)
BILLS = [("2026-08", date(2026, 9, 1), 40_000, 76, 3_040), ("2026-09", date(2026, 10, 1), 10_000, 46, 460)]
FORBIDDEN = [line.strip().lower() for line in
             (MESSAGES_DIR / "forbidden_phrases.txt").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
# Every single kind, the consolidated escalation day, and a reminder on a payment plan.
COMBINATIONS = [(k,) for k in MESSAGE_KINDS] + [
    ("credit_prenotice", "disconnection_notice"), ("formal_notice", "disconnection_cancelled")]


def data(language: str, kinds, holder: str = "王伟", **kw):
    return message_data(account_id="A1", holder_name=holder, language=language, kinds=kinds,
                        cycle_date=D, outstanding_fen=50_000, late_fee_fen=3_500, dpd=76,
                        service_address="北京市朝阳区人民路1号", bills=BILLS,
                        report_from=date(2026, 11, 23), earliest_disconnection=date(2026, 11, 24),
                        cancelled_served_on=date(2026, 11, 2), **kw)


# Every segment's wording (CONTRACT §6), with and without the waiver and each next legal step.
VARIANTS = [dict(segment=s, late_fee_waived=w) for s in SEGMENTS for w in (False, True)] + [
    dict(segment="wilful", next_step=step, next_step_on=date(2026, 11, 30))
    for step in ("credit_prenotice", "lawyer_letter", "credit_report", "disconnection")]


def all_renderings():
    for language, kinds, channel, variant in itertools.product(LANGUAGES, COMBINATIONS,
                                                               ("email", "sms"), VARIANTS):
        yield language, kinds, channel, render(channel, data(language, kinds, **variant))


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kinds", COMBINATIONS, ids=lambda k: "+".join(k))
def test_every_message_states_account_amount_due_date_how_to_pay_and_opt_out(language, kinds):
    words = {"zh-CN": {"due": "2026年9月1日", "amount": "500.00", "pay": "缴费", "email_out": "退订",
                       "sms_out": "回复TD退订", "fee": "35.00", "as_of": "2026年11月16日"},
             "en": {"due": "1 September 2026", "amount": "500.00", "pay": "Pay", "email_out": "rather not",
                    "sms_out": "Reply STOP", "fee": "35.00", "as_of": "16 November 2026"}}[language]
    email = render("email", data(language, kinds))
    sms = render("sms", data(language, kinds))
    for body in (email.text, email.html, sms.text):
        assert "A1" in body and words["amount"] in body and words["due"] in body
        assert words["pay"].lower() in body.lower() and words["as_of"] in body
    assert words["email_out"] in email.text and words["sms_out"] in sms.text
    fee_due = bool({"formal_notice", "credit_prenotice", "disconnection_notice"} & set(kinds))
    for body in (email.text, email.html, sms.text):
        assert (words["fee"] in body) == fee_due, body
    if "disconnection_notice" in kinds:
        assert ("2026年11月24日" if language == "zh-CN" else "24 November 2026") in sms.text
    if "credit_prenotice" in kinds:
        assert ("2026年11月23日" if language == "zh-CN" else "23 November 2026") in email.text
    if "disconnection_cancelled" in kinds:
        assert ("已撤销" if language == "zh-CN" else "withdrawn") in sms.text


def test_each_language_is_its_own():
    zh, en = render("email", data("zh-CN", ("reminder",))), render("email", data("en", ("reminder",)))
    assert "您好" in zh.text and "Dear" not in zh.text and "lang=\"zh-CN\"" in zh.html
    assert "Dear 王伟" in en.text and "您好" not in en.text and "lang=\"en\"" in en.html
    # An unknown language falls back to the contract's default, zh-CN.
    assert render("sms", data("fr", ("reminder",))).template == "messages/sms/zh-CN"


def test_one_consolidated_message_carries_every_kind_due():
    email = render("email", data("en", ("credit_prenotice", "disconnection_notice")))
    assert email.subject.startswith("Notice of possible disconnection")
    assert "credit information" in email.text and "suspend the electricity supply" in email.text
    assert email.html.count('class="kind-') == 2


def test_customer_supplied_fields_arrive_escaped_in_html_and_plain_in_text():
    holder = "<script>alert('x')</script> & Co"
    email = render("email", data("en", ("reminder",), holder=holder))
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in email.html
    assert f"Dear {holder}," in email.text           # plain text is not HTML: shown as typed
    # ... and the address field of a disconnection notice too.
    evil = message_data(account_id="A1", holder_name="x", language="zh-CN",
                        kinds=("disconnection_notice",), cycle_date=D, outstanding_fen=1, late_fee_fen=1,
                        dpd=40, service_address="<img src=x onerror=alert(1)>", bills=BILLS,
                        earliest_disconnection=D)
    assert "<img" not in render("email", evil).html and "&lt;img" in render("email", evil).html


def test_the_mime_message_keeps_the_escaping_and_the_deterministic_message_id():
    r = render("email", data("en", ("reminder",), holder="<script>x</script>"))
    msg = OutboxMessage("2026-11-16:A1:email", "2026-11-16", "A1", "email", "a1@example.com",
                        r.subject, r.text, r.html, "<abc@utility.example>", "2026-11-16T00:30:00.000000Z")
    raw = build_email(msg, "billing@utility.example").as_bytes()
    assert raw == build_email(msg, "billing@utility.example").as_bytes()   # same row, same bytes
    import email as email_lib
    from email import policy
    parsed = email_lib.message_from_bytes(raw, policy=policy.default)
    assert parsed["Message-ID"] == "<abc@utility.example>" and parsed["To"] == "a1@example.com"
    assert parsed["List-Unsubscribe"] == "<mailto:billing@utility.example?subject=unsubscribe%20A1>"
    html = parsed.get_body(("html",)).get_content()
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>" not in html
    # A sender with a display name (the connection's from_email): the opt-out is the address.
    named = email_lib.message_from_bytes(
        build_email(msg, "State Grid Billing <billing@utility.example>").as_bytes(), policy=policy.default)
    assert named["List-Unsubscribe"] == "<mailto:billing@utility.example?subject=unsubscribe%20A1>"
    assert named["From"].addresses[0].display_name == "State Grid Billing"


@pytest.mark.parametrize("subject", [
    ("电费缴费提醒（户号 A1） 停电预先通知 " * 4).strip(),  # long CJK: folded into encoded-words
    "Payment reminder (account A1)",                   # plain ASCII stays readable
    "é" * 100 + "𝄞x" * 40,                             # 2- and 4-byte characters never split
])
def test_the_mime_message_carries_any_subject_as_it_was(subject):
    """The message the ``emails`` package builds: the standard library's parser reads back
    exactly what went in."""
    import email as email_lib
    from email import policy
    text_body, html_body = "第一行\nsecond line\n" * 30, "<p>王伟 &amp; Co</p>\n" * 40
    msg = OutboxMessage("2026-11-16:A1:email", "2026-11-16", "A1", "email", "a1@example.com",
                        subject, text_body, html_body, "<abc@utility.example>",
                        "2026-11-16T00:30:00.000000Z")
    raw = build_email(msg, "国网电力 <billing@utility.example>").as_bytes()
    parsed = email_lib.message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == subject and parsed["X-Arrears-Key"] == "2026-11-16:A1:email"
    assert parsed["From"].addresses[0].addr_spec == "billing@utility.example"
    assert parsed["From"].addresses[0].display_name == "国网电力"
    assert parsed.get_body(("plain",)).get_content() == text_body
    assert parsed.get_body(("html",)).get_content() == html_body


def test_the_headers_folded_from_memory_are_the_bytes_emails_folds_itself():
    """build_email lets ``emails`` fold a header it folded before from memory: message after
    message (the same From, Date and part headers; other subjects, keys, addresses), the bytes
    are those of ``emails`` with its own default policy."""
    subjects = [("电费缴费提醒（户号 A1） 停电预先通知 " * 4).strip(), "Payment reminder",
                "é" * 100 + "𝄞x" * 40]
    for n in range(12):
        msg = OutboxMessage(f"2026-11-16:A{n}:email", "2026-11-16", f"A{n}", "email",
                            f"a{n}@example.com", f"{subjects[n % 3]} {n % 2}", "第一行\n" * (n + 1),
                            "<p>王伟</p>\n" * n, f"<{n}@utility.example>",
                            f"2026-11-1{n % 2}T00:30:00.000000Z")
        alone = build_email(msg, "国网电力 <billing@utility.example>")
        alone.policy = None
        assert build_email(msg, "国网电力 <billing@utility.example>").as_bytes() == alone.as_bytes()


@pytest.mark.parametrize("field", ["subject", "idem_key"])
def test_a_line_break_in_a_header_value_is_refused_never_a_header_of_its_own(field):
    import emails.exc
    values = dict(idem_key="2026-11-16:A1:email", subject="Reminder")
    values[field] += "\r\nBcc: victim@example.com"
    msg = OutboxMessage(values["idem_key"], "2026-11-16", "A1", "email", "a1@example.com",
                        values["subject"], "text\n", "", "<abc@utility.example>",
                        "2026-11-16T00:30:00.000000Z")
    with pytest.raises(emails.exc.BadHeaderError):
        build_email(msg, "billing@utility.example").as_bytes()


def test_no_template_uses_a_forbidden_phrase():
    assert len(FORBIDDEN) > 20
    sources = {p.relative_to(MESSAGES_DIR): p.read_text(encoding="utf-8")
               for p in MESSAGES_DIR.rglob("*") if p.is_file() and p.name != "forbidden_phrases.txt"}
    assert any(str(name).endswith("parts.j2") for name in sources)
    rendered = {f"{lang}/{'+'.join(k)}/{ch}/{r.content_sha256}": r.subject + r.text + r.html
                for lang, k, ch, r in all_renderings()}
    assert len(rendered) > len(LANGUAGES) * len(COMBINATIONS) * 2 * len(SEGMENTS)
    for name, body in {**{str(k): v for k, v in sources.items()}, **rendered}.items():
        hits = [p for p in FORBIDDEN if p in body.lower()]
        assert not hits, f"{name} uses {hits}"


def test_the_phrase_check_would_catch_a_threat(tmp_path):
    threat = "Pay now or else we tell your employer. 否则后果自负"
    assert [p for p in FORBIDDEN if p in threat.lower()] == ["your employer", "or else", "后果自负"]


def test_no_message_names_anyone_but_the_holder():
    """The only person a message names is the holder: no other customer, agent or relative."""
    for lang, kinds, channel, r in all_renderings():
        body = r.subject + r.text + r.html
        assert "王伟" in body, f"{lang}/{kinds}/{channel} does not greet the holder"
    other = render("email", data("en", ("reminder",), holder="Zhao Min"))
    assert "王伟" not in other.text + other.html
    # The template data has no field for anyone else to be named through.
    from dataclasses import fields

    from arrears.delivery.render import MessageData
    people = {f.name for f in fields(MessageData) if "name" in f.name}
    assert people == {"holder_name", "utility_name"}


def test_template_version_changes_with_the_templates(tmp_path, monkeypatch):
    from arrears.delivery import render as render_module
    before = render("sms", data("en", ("reminder",))).template_version
    copy = tmp_path / "messages"
    import shutil
    shutil.copytree(MESSAGES_DIR, copy)
    (copy / "en" / "parts.j2").write_text((copy / "en" / "parts.j2").read_text() + "\n{# edited #}\n")
    monkeypatch.setattr(render_module, "MESSAGES_DIR", copy)
    render_module.template_version.cache_clear()
    try:
        assert render_module.template_version("sms", "en") != before
    finally:
        render_module.template_version.cache_clear()
