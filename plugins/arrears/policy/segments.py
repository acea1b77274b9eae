"""Customer segments (CONTRACT §6): what kind of customer an account is, from its own history.

:func:`segment` is pure: the account, its case events and the facts read from the record
(:class:`~arrears.model.SegmentFacts`) in, ``(segment, reason code)`` out. The first rule that
applies wins, in the order of :data:`~arrears.model.SEGMENTS`. A segment changes the wording and
the timing of what the policy does, never whether a hold, a protection or a contact limit applies.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from datetime import date, timedelta

from arrears.model import PROTECTIONS, SEGMENTS, Account, CaseEvent, SegmentFacts


@dataclass(frozen=True)
class SegmentRules:
    """The thresholds of the rules and the segments' timing ([segments] of the policy file)."""
    dispute_days: int = 90                 # disputing: a dispute open, or opened/closed this recently
    hardship_protections: frozenset[str] = frozenset({"low_income", "five_guarantee"})
    plan_days: int = 180                   # hardship: a payment plan this recently ...
    part_payment_days: int = 90            # ... or this many part payments this recently
    part_payments_min: int = 2
    broken_days: int = 180                 # wilful: this many broken promises/plans this recently ...
    broken_min: int = 2
    wilful_min_dpd: int = 90               # ... or DPD this high with no payment ...
    notice_payment_days: int = 90          # ... in this many days after a served notice
    notice_lookback_days: int = 180        # (served notices looked at)
    reminder_payment_days: int = 7         # forgetful: paid this soon after a reminder ...
    forgetful_days: int = 180              # ... at least once this recently
    # Timing per segment: the lawyer letter's DPD floor (others: [lawyer_letter] min_dpd).
    lawyer_letter_min_dpd: tuple[tuple[str, int], ...] = (("wilful", 45),)  # (segment, DPD)
    # Agents' call list: segments in this order, then the larger outstanding first.
    call_priority: tuple[str, ...] = ("hardship", "disputing", "wilful", "new", "forgetful")

    @cached_property
    def lawyer_letter_floors(self) -> dict[str, int]:
        """``lawyer_letter_min_dpd`` as a dict (looked up for every account in escalation)."""
        return dict(self.lawyer_letter_min_dpd)

    @property
    def lookback_days(self) -> int:
        """How far back the record is read for these rules (the longest window)."""
        return max(self.plan_days, self.part_payment_days, self.broken_days, self.forgetful_days,
                   self.notice_lookback_days + self.notice_payment_days,
                   self.forgetful_days + self.reminder_payment_days)


def rules_from_dict(raw: Mapping) -> SegmentRules:
    """[segments] of the policy file; missing keys keep the contract's defaults."""
    base = SegmentRules()
    known = {f for f in SegmentRules.__dataclass_fields__}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"unknown [segments] keys {sorted(unknown)}: use {sorted(known)}")
    values = dict(raw)
    if "hardship_protections" in values:
        values["hardship_protections"] = frozenset(values["hardship_protections"])
        if not values["hardship_protections"] <= set(PROTECTIONS):
            raise ValueError(f"[segments] hardship_protections must be among {PROTECTIONS}")
    if "lawyer_letter_min_dpd" in values:
        values["lawyer_letter_min_dpd"] = tuple(sorted(
            (str(k), int(v)) for k, v in values["lawyer_letter_min_dpd"].items()))
        if not {k for k, _ in values["lawyer_letter_min_dpd"]} <= set(SEGMENTS):
            raise ValueError(f"[segments.lawyer_letter_min_dpd] keys must be segments {SEGMENTS}")
    if "call_priority" in values:
        values["call_priority"] = tuple(values["call_priority"])
        if sorted(values["call_priority"]) != sorted(SEGMENTS):
            raise ValueError(f"[segments] call_priority must list every segment once: {SEGMENTS}")
    rules = SegmentRules(**{**base.__dict__, **values})
    for name in known - {"hardship_protections", "lawyer_letter_min_dpd", "call_priority"}:
        if int(getattr(rules, name)) < 0:
            raise ValueError(f"[segments] {name} must not be negative")
    return rules


def _within(day: date, cycle_date: date, days: int) -> bool:
    """``day`` lies in the ``days`` days up to and including D."""
    return cycle_date - timedelta(days=days) <= day <= cycle_date


def _disputing(events: list[CaseEvent], cycle_date: date, rules: SegmentRules) -> str | None:
    disputes = [e for e in events if e.event_type in ("dispute_opened", "dispute_closed")]
    if disputes and disputes[-1].event_type == "dispute_opened":
        return "dispute_open"
    recent = [e for e in disputes if _within(e.effective_date, cycle_date, rules.dispute_days)]
    if recent:
        last = recent[-1]
        return f"{last.event_type}_{last.effective_date}"
    return None


def _hardship(account: Account, events: list[CaseEvent], facts: SegmentFacts, cycle_date: date,
              rules: SegmentRules) -> str | None:
    relief = sorted(account.protections & rules.hardship_protections)
    if relief:
        return "+".join(relief)
    # A plan agreed within the window (one agreed earlier, even if broken lately, is not).
    plans = [e for e in events if e.event_type == "payment_plan"
             and _within(e.effective_date, cycle_date, rules.plan_days)]
    if plans:
        return f"payment_plan_{plans[-1].effective_date}"
    parts = [p for p in facts.payments
             if p.still_overdue and _within(p.paid_on, cycle_date, rules.part_payment_days)]
    if len(parts) >= rules.part_payments_min:
        return f"part_payments_{len(parts)}_in_{rules.part_payment_days}_days"
    return None


def _wilful(events: list[CaseEvent], facts: SegmentFacts, dpd: int, cycle_date: date,
            rules: SegmentRules) -> str | None:
    broken = [d for d in facts.broken_promises
              if _within(d, cycle_date, rules.broken_days) and d < cycle_date]
    broken += [e.effective_date for e in events if e.event_type == "plan_broken"
               and _within(e.effective_date, cycle_date, rules.broken_days)]
    broken += [d for d in facts.broken_plans if _within(d, cycle_date, rules.broken_days)]
    if len(broken) >= rules.broken_min:
        return f"broken_{len(broken)}_in_{rules.broken_days}_days"
    if dpd < rules.wilful_min_dpd:
        return None
    # Only a notice whose whole payment window has passed can show "no payment within N days".
    for served in sorted(facts.notices_served, reverse=True):
        end = served + timedelta(days=rules.notice_payment_days)
        if end > cycle_date or not _within(served, cycle_date, rules.notice_lookback_days + rules.notice_payment_days):
            continue
        if not any(served < p.paid_on <= end for p in facts.payments):
            return f"dpd_{dpd}_no_payment_{rules.notice_payment_days}_days_after_notice_{served}"
    return None


def _forgetful(facts: SegmentFacts, cycle_date: date, rules: SegmentRules) -> str | None:
    for p in sorted(facts.payments, key=lambda p: p.paid_on, reverse=True):
        if not _within(p.paid_on, cycle_date, rules.forgetful_days):
            continue
        prompt = [r for r in facts.reminders
                  if r <= p.paid_on <= r + timedelta(days=rules.reminder_payment_days)]
        if prompt:
            return f"paid_{p.paid_on}_after_reminder_{max(prompt)}"
    return None


def segment(account: Account, events: Iterable[CaseEvent], facts: SegmentFacts, dpd: int,
            cycle_date: date, rules: SegmentRules) -> tuple[str, str]:
    """(segment, reason code) of the account on D: the first rule of CONTRACT §6 that applies.
    Only events effective on or before D count."""
    if not (events or facts.payments or facts.broken_promises or facts.broken_plans
            or (facts.notices_served and dpd >= rules.wilful_min_dpd)
            or not account.protections.isdisjoint(rules.hardship_protections)):
        return NEW  # most of the book: nothing any rule could use (a reminder alone is not enough)
    known = sorted((e for e in events if e.effective_date <= cycle_date),
                   key=lambda e: (e.effective_date, e.event_id))
    for name, why in (("disputing", lambda: _disputing(known, cycle_date, rules)),
                      ("hardship", lambda: _hardship(account, known, facts, cycle_date, rules)),
                      ("wilful", lambda: _wilful(known, facts, dpd, cycle_date, rules)),
                      ("forgetful", lambda: _forgetful(facts, cycle_date, rules))):
        rule = why()
        if rule is not None:
            return name, f"segment:{name}:{rule}"
    return NEW


NEW = ("new", "segment:new:no_rule_applies")
