"""Each segment's message in both languages says what CONTRACT §6 asks of it: forgetful the
quickest ways to pay and autopay; hardship the relief schemes and how to ask for a plan, the fee
shown as waived where waived; disputing the bill breakdown and how to query it; wilful the formal
register with the next legal step and its date and no offer wording; new the stage's default."""
from __future__ import annotations

from datetime import date

import pytest

from arrears.delivery.render import message_data, render
from arrears.model import LANGUAGES

D = date(2026, 11, 16)
BILLS = [("2026-08", date(2026, 9, 1), 40_000, 76, 3_040), ("2026-09", date(2026, 10, 1), 10_000, 46, 460)]


def bodies(language, kinds=("reminder",), **kw):
    data = message_data(account_id="A1", holder_name="王伟", language=language, kinds=kinds,
                        cycle_date=D, outstanding_fen=50_000, late_fee_fen=3_500, dpd=76,
                        bills=BILLS, earliest_disconnection=date(2026, 11, 24), **kw)
    email, sms = render("email", data), render("sms", data)
    return email.text, email.html, sms.text


WORDS = {
    "forgetful": {"en": (["autopay", "quickest ways to pay", "WeChat Pay"], ["autopay"]),
                  "zh-CN": (["自动扣费", "最便捷的缴费方式"], ["自动扣费"])},
    "hardship": {"en": (["relief schemes", "payment plan", "低保", "五保", "95598"], ["Relief", "payment plans"]),
                 "zh-CN": (["救助政策", "分期缴费", "低保户", "五保户"], ["低保/五保", "分期"])},
    "disputing": {"en": (["query it", "meter readings", "listed above", "1 October 2026"], ["query any amount"]),
                  "zh-CN": (["提出查询", "抄表数据", "上方列明", "2026年10月1日"], ["疑问", "查询"])},
}
NEW = {"en": ["autopay", "relief schemes", "query it", "Next step"],
       "zh-CN": ["自动扣费", "救助政策", "提出查询", "下一步"]}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("segment", list(WORDS))
def test_each_segment_has_its_own_wording(segment, language):
    email_words, sms_words = WORDS[segment][language]
    text_body, html, sms = bodies(language, segment=segment)
    for word in email_words:
        assert word in text_body and word in html, (segment, language, word)
    for word in sms_words:
        assert word in sms, (segment, language, word)
    # No other segment's wording leaks in.
    others = [w for s, lang in WORDS.items() if s != segment for w in lang[language][0][:2]]
    assert not [w for w in others if w in text_body]


@pytest.mark.parametrize("language", LANGUAGES)
def test_new_gets_the_stage_default(language):
    text_body, html, sms = bodies(language, segment="new")
    assert bodies(language) == (text_body, html, sms)          # "new" is the default wording
    assert not [w for w in NEW[language] if w in text_body + sms]
    # A reminder to a new customer lists no bills: only the fee kinds and disputing do.
    assert ("2026年10月1日" if language == "zh-CN" else "1 October 2026") not in text_body


@pytest.mark.parametrize("language, words", [
    ("en", ["Payment reminder: your bill is 76 days", "Next step: if the balance is still unpaid on 24 November 2026",
            "lawyer's letter", "Paying CNY 500.00 before then"]),
    ("zh-CN", ["缴费提示：", "下一步：如欠费在 2026年11月24日 前仍未结清", "律师函", "缴清欠费 500.00 元"])])
def test_wilful_is_formal_with_the_next_legal_step_and_its_date(language, words):
    text_body, html, sms = bodies(language, segment="wilful", next_step="lawyer_letter",
                                  next_step_on=date(2026, 11, 24))
    for word in words:
        assert word in text_body, word
    assert ("2026年11月24日" if language == "zh-CN" else "24 November 2026") in sms
    # No offer wording: nothing about plans, relief, or "when you can".
    offers = {"en": ["payment plan", "relief", "when you can", "slipped your mind", "hard for you"],
              "zh-CN": ["分期", "救助", "方便时", "疏忽", "特殊困难"]}[language]
    assert not [w for w in offers if w in text_body + sms]
    subject = render("email", message_data(account_id="A1", holder_name="x", language=language,
                                           kinds=("reminder",), cycle_date=D, outstanding_fen=1,
                                           late_fee_fen=0, dpd=3, segment="wilful")).subject
    assert "Friendly" not in subject


@pytest.mark.parametrize("language", LANGUAGES)
def test_wilful_disconnection_notice_keeps_the_medical_equipment_safeguard(language):
    text_body, _, sms = bodies(language, ("disconnection_notice",), segment="wilful",
                               next_step="disconnection", next_step_on=date(2026, 11, 24))
    assert ("医疗设备" if language == "zh-CN" else "medical equipment") in text_body + sms


@pytest.mark.parametrize("language, waived_words", [
    ("en", ["which is waived under the relief scheme", "late fee in total CNY 35.00, waived",
            "The late fee of CNY 35.00 on your account is waived"]),
    ("zh-CN", ["已按救助政策予以减免", "违约金合计 35.00 元，已减免", "您账户的违约金 35.00 元已按救助政策予以减免"])])
def test_a_waived_late_fee_is_shown_as_waived(language, waived_words):
    text_body, html, sms = bodies(language, ("formal_notice",), segment="hardship", late_fee_waived=True)
    for word in waived_words:
        assert word in text_body, word
    assert ("（已减免）" if language == "zh-CN" else "(waived)") in sms
    unwaived, _, unwaived_sms = bodies(language, ("formal_notice",), segment="hardship")
    assert not [w for w in waived_words if w in unwaived] and "减免）" not in unwaived_sms


@pytest.mark.parametrize("language, waived, demand", [
    ("zh-CN", "上述违约金人民币107.79元予以减免", "合计人民币1,680.50元（违约金已减免）"),
    ("en", "the late fee of CNY 107.79 above is waived", "in total CNY 1,680.50 (the late fee is waived)")])
def test_a_waived_late_fee_is_shown_as_waived_in_the_lawyer_letter(language, waived, demand):
    from pypdf import PdfReader
    import io

    from arrears.batches import letters

    def text_of(flag: bool) -> str:
        letter = letters.Letter(D, "3100123456", "李娜", "上海市浦东新区建设路2号501室", language, 77,
                                168_050, 10_779, (letters.LetterBill("2026-07", 168_050, D, 77, 10_779),),
                                late_fee_waived=flag)
        pdf = PdfReader(io.BytesIO(letters.render_letter(letter)))
        return "".join("".join(p.extract_text().split()) for p in pdf.pages)

    squash = lambda s: "".join(s.split())  # noqa: E731 - the PDF's line breaks fall anywhere
    shown, plain = text_of(True), text_of(False)
    assert squash(waived) in shown and squash(demand) in shown
    assert squash(waived) not in plain and "1,788.29" in plain   # outstanding + fee demanded
