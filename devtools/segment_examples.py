"""One rendered message per customer segment for the README: `python -m devtools.segment_examples`.

Writes docs/img/segment_<segment>_<language>.png (the HTML email, screenshotted by headless
chromium) and docs/segments.md (subject, plain-text email and SMS of each).
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from devtools.message_examples import D, HOLDERS, example_lines, write_markdown
from arrears.delivery.render import message_data
from arrears.model import LANGUAGES
from arrears.policy import load_policy
from arrears.policy.treatment import next_legal_step

# segment -> (the day's kinds, DPD, the example's story)
EXAMPLES = {
    "forgetful": (("reminder",), 3, "paid within 7 days of a reminder before; a reminder today"),
    "hardship": (("formal_notice",), 15, "a low_income household on a portfolio with "
                 "`waive_for = [\"low_income\", \"five_guarantee\"]`; a formal notice today"),
    "disputing": (("formal_notice",), 15, "a dispute closed 20 days ago; a formal notice today"),
    "wilful": (("credit_prenotice",), 40, "two promises broken; entered escalation: the credit "
               "pre-notice today, the lawyer letter due at DPD 45"),
    "new": (("reminder",), 3, "none of the rules applies: the stage's default wording"),
}


def sample(segment: str, language: str):
    kinds, dpd, _ = EXAMPLES[segment]
    policy = load_policy()
    bills = [("2026-08", D - timedelta(days=dpd), 40_000, dpd, 40 * dpd if dpd > 7 else 0),
             ("2026-09", D - timedelta(days=max(dpd - 30, 1)), 10_000, max(dpd - 30, 1),
              10 * max(dpd - 30, 1) if dpd > 7 else 0)]
    outstanding, fee = sum(b[2] for b in bills), sum(b[4] for b in bills)
    report_from = D + timedelta(days=policy.prenotice_lead_days)
    step, step_on = (next_legal_step(segment, dpd, outstanding, kinds, D, policy, report_from, None)
                     if segment == "wilful" else ("", None))
    return message_data(
        account_id="3301029988", holder_name=HOLDERS[language], language=language, kinds=kinds,
        cycle_date=D, outstanding_fen=outstanding, late_fee_fen=fee, dpd=dpd,
        service_address="北京市朝阳区人民路1号" if language == "zh-CN" else "1 Main Street",
        bills=bills, report_from=report_from, segment=segment,
        late_fee_waived=segment == "hardship", next_step=step, next_step_on=step_on)


def main(argv=None) -> None:
    def body(img: Path, chromium: str | None):
        for segment, (kinds, dpd, story) in EXAMPLES.items():
            yield from (f"## {segment} ({' + '.join(kinds)}, DPD {dpd})", "", f"*{story}*", "")
            for language in LANGUAGES:
                yield from example_lines(segment, sample(segment, language),
                                         img / f"segment_{segment}_{language}.png", chromium,
                                         email_text=True)
    write_markdown(argv, __doc__, "devtools.segment_examples",
                   "One message per customer segment, rendered", "segments.md", body)


if __name__ == "__main__":
    main()
