"""One account's decision for cycle date D, from what was known as of D.

The steps, each a rule code in ``Decision.reasons`` so an auditor can read why:
stage from DPD -> holds -> segment (§6) -> messages (contact limits) -> escalation actions -> disconnection.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

from arrears.model import (ACTIONS, HOLDS, SERVED_NOTICES, Account, CaseEvent, Decision, History,
                           OpenBill)
from arrears.policy.config import Policy
from arrears.policy.holds import (STOPS_CONTACT, STOPS_DISCONNECTION, STOPS_ESCALATION, STOPS_MESSAGES,
                                  active_holds, protections_on)
from arrears.policy.plans import plan_of
from arrears.policy.late_fee import account_late_fee
from arrears.policy.segments import segment as segment_of
from arrears.policy.stages import days_past_due, stage_for
from arrears.policy.treatment import late_fee_waiver, lawyer_min_dpd

EarliestDisconnection = Callable[[date], date]


@dataclass(frozen=True)
class NoticeFacts:
    """What later steps need of the disconnection part of a decision, as data (not reasons)."""
    earliest: date | None = None   # earliest disconnection date of the notice decided today
    pending: bool = False          # an earlier notice is still open and no order rests on it today


NO_NOTICE = NoticeFacts()
PENDING_NOTICE = NoticeFacts(pending=True)
# Contract order of a decision's actions and holds (model.ACTIONS, model.HOLDS).
_ACTION_ORDER = {a: i for i, a in enumerate(ACTIONS)}
_HOLD_ORDER = {h: i for i, h in enumerate(HOLDS)}


def _in_order(items: set[str], order: dict[str, int]) -> tuple[str, ...]:
    """``items`` in contract order; a name the contract does not list is left out."""
    if not items:
        return ()
    return tuple(sorted([i for i in items if i in order], key=order.__getitem__))


def _stage_entered_on(stage: str, history: History, cycle_date: date) -> date:
    if history.previous_stage == stage and history.stage_entered_on is not None:
        return history.stage_entered_on
    return cycle_date


def plan_channels(account: Account, holds: set[str], history: History, stage_entered_on: date,
                  cycle_date: date, policy: Policy, reasons: list[str],
                  stage: str | None = None) -> list[str]:
    """The channels a message may go out on today under the contact limits of CONTRACT §2: per
    slot of the stage (CONTRACT §7), its first channel the account can be reached on; a later
    channel of a slot only when every earlier one is unavailable (opted out, no address)."""
    if holds & STOPS_MESSAGES:
        reasons.append("no_messages:" + "+".join(sorted(holds & STOPS_MESSAGES)))
        return []
    # Loops rather than generator expressions here and below: this runs for every account.
    cap_start = cycle_date - timedelta(days=policy.contact_cap_days - 1)
    counted = policy.counted_channels
    sent_in_cap = 0
    for day, ch in history.messages:
        if cap_start <= day < cycle_date and ch in counted:
            sent_in_cap += 1
    channels: list[str] = []
    for slot in policy.slots_for(stage or history.previous_stage or "reminder"):
        channel = None
        for candidate in slot:
            address = account.address(policy.rule(candidate).address_field)
            if candidate in account.opt_out:
                reasons.append(f"{candidate}:opted_out")
            elif not address:
                reasons.append(f"{candidate}:contact_gap")
            elif (candidate, address) in history.contact_gaps:
                # This address failed for good (SMTP 5xx, a gateway's permanent error): a gap,
                # so the slot falls back, until the extract brings a different address.
                reasons.append(f"{candidate}:contact_gap:permanent_failure")
            else:
                channel = candidate
                break
        if channel is None:
            continue
        last = None
        for day, ch in history.messages:
            if ch == channel and stage_entered_on <= day < cycle_date and (last is None or day > last):
                last = day
        if last is not None and (cycle_date - last).days < policy.contact_repeat_days:
            reasons.append(f"{channel}:repeat_wait_until_{last + timedelta(days=policy.contact_repeat_days)}")
            continue
        if channel in counted:
            if sent_in_cap >= policy.contact_max_messages:
                reasons.append(f"{channel}:cap_{policy.contact_max_messages}_in_{policy.contact_cap_days}_days")
                continue
            sent_in_cap += 1  # today's counted messages count toward the cap too
        channels.append(channel)
        reasons.append(f"{channel}:due")
    return channels


def decide_account(account: Account, bills: Sequence[OpenBill], events: Sequence[CaseEvent],
           history: History, cycle_date: date, policy: Policy,
           earliest_disconnection: EarliestDisconnection,
           payments: Sequence[tuple[date, int]] = (), segment_as: str | None = None) -> Decision:
    """``segment_as`` treats the account as that segment instead of the one its history gives
    (what-ifs and the tests that prove a segment never loosens a limit)."""
    outstanding = 0
    for b in bills:
        if b.open_fen > 0:
            outstanding += b.open_fen
    dpd = days_past_due(bills, cycle_date)
    stage = stage_for(dpd, policy)
    entered = _stage_entered_on(stage, history, cycle_date)
    late_fee, bill_fees = account_late_fee(bills, account.customer_class, cycle_date, policy)
    holds = active_holds(account, events, outstanding, cycle_date, policy, payments)
    plan = plan_of(events, payments, cycle_date, policy.plan_grace_days)
    facts = history.segment_facts
    if plan is not None and plan.missed is not None:  # a plan broken by a missed instalment
        facts = replace(facts, broken_plans=(
            *facts.broken_plans, plan.missed + timedelta(days=policy.plan_grace_days + 1)))
    segment, segment_reason = segment_of(account, events, facts, dpd, cycle_date, policy.segments)
    if segment_as is not None:
        segment, segment_reason = segment_as, f"segment:{segment_as}:as_requested"
    reasons = [f"stage:{stage}:dpd_{dpd}", segment_reason]
    if plan is not None and plan.missed is not None:
        reasons.append(plan.reason)
    waived_for = late_fee_waiver(account, segment, policy) if late_fee else None
    if waived_for:
        reasons.append(f"late_fee:waived:{waived_for}")
    actions: set[str] = set()
    kinds: list[str] = []
    notice = NO_NOTICE
    in_person: list[str] = []

    def finish() -> Decision:
        return Decision(
            account_id=account.account_id, cycle_date=cycle_date, stage=stage,
            stage_entered_on=entered, dpd=dpd, outstanding_fen=outstanding, late_fee_fen=late_fee,
            actions=_in_order(actions, _ACTION_ORDER),
            holds=_in_order(holds, _HOLD_ORDER), message_kinds=tuple(kinds),
            reasons=tuple(reasons), policy_version=policy.version, bill_fees=bill_fees,
            segment=segment, late_fee_waived=bool(waived_for),
            disconnection_earliest=notice.earliest, notice_pending=notice.pending,
            serve_in_person=tuple(in_person))

    if stage == "current" or "below_threshold" in holds:
        reasons.append("no_action:nothing_overdue" if stage == "current" else "no_action:below_threshold")
        # No collection action; but a customer whose disconnection notice was cancelled is told.
        if history.cancelled_notice is not None:
            channels = plan_channels(account, holds, history, entered, cycle_date, policy, reasons,
                                     stage)
            if channels:
                kinds.append("disconnection_cancelled")
                actions.update(channels)
                reasons.append(f"disconnection_cancelled:notice_{history.cancelled_notice.notice_id}")
        return finish()

    channels = plan_channels(account, holds, history, entered, cycle_date, policy, reasons, stage)
    escalating = stage == "escalation" and not holds & STOPS_ESCALATION
    if stage == "escalation" and not escalating:
        reasons.append("escalation_stopped:" + "+".join(sorted(holds & STOPS_ESCALATION)))

    # The message of the day: the stage's tone, plus any notice that rides on it. In escalation
    # a message goes out only to carry a notice.
    on_plan = "payment_plan" in holds
    if stage == "reminder" or on_plan:
        kinds.append("reminder")  # a payment plan in good standing gets reminders only
        if on_plan:
            reasons.append("reminders_only:payment_plan")
    elif stage == "formal_notice":
        kinds.append("formal_notice")
    if escalating and not _any_on_or_after(history.prenotices, entered):
        # Until a pre-notice of this spell is served (delivered or in person), every message
        # of the spell carries it.
        if channels:
            kinds.append("credit_prenotice")
            actions.add("credit_prenotice")
            reasons.append("credit_prenotice:escalation_entry")
        else:
            reasons.append("credit_prenotice:no_channel_to_deliver")
    if history.cancelled_notice is not None and channels:
        kinds.append("disconnection_cancelled")
        reasons.append(f"disconnection_cancelled:notice_{history.cancelled_notice.notice_id}")
    if stage == "formal_notice" and not holds & STOPS_CONTACT and not on_plan:
        actions.add("call_list")
        reasons.append("call_list:formal_notice")

    if escalating:
        notice = _escalation_actions(account, history, cycle_date, policy, segment, dpd, outstanding, holds,
                            entered, bool(channels), kinds, actions, reasons, earliest_disconnection)
    if stage == "escalation" and not holds & STOPS_CONTACT:
        actions.add("field_visit")
        reasons.append("field_visit:escalation")
        in_person = _to_serve_in_person(history, entered, cycle_date, actions, reasons)
        reasons += [f"field_visit:serve_{n}_in_person" for n in in_person]

    if channels and kinds:
        actions.update(channels)
    elif channels:
        reasons.append("no_message:nothing_due")
    return finish()


def _any_on_or_after(days: Iterable[date], start: date) -> bool:
    for day in days:
        if day >= start:
            return True
    return False


def _any_in_month(days: Iterable[date], month_of: date) -> bool:
    for day in days:
        if day.year == month_of.year and day.month == month_of.month:
            return True
    return False


def _to_serve_in_person(history: History, entered: date, cycle_date: date, actions: set[str],
                        reasons: list[str]) -> list[str]:
    """The notices of this escalation spell that no message can deliver: decided on an earlier
    date and still not served (and not sent again today), or due today with no channel left."""
    served = {"credit_prenotice": _any_on_or_after(history.prenotices, entered),
              "disconnection_notice": history.pending_notice is not None
              and history.pending_notice.served_on >= entered}
    stuck = {"credit_prenotice": "credit_prenotice:no_channel_to_deliver",
             "disconnection_notice": "disconnection_notice:waits_for_a_message_channel"}
    out = []
    for notice in SERVED_NOTICES:
        if served[notice] or notice in actions:
            continue
        decided = False
        for day, decided_notice in history.notices_decided:
            if decided_notice == notice and entered <= day < cycle_date:
                decided = True
                break
        if decided or stuck[notice] in reasons:
            out.append(notice)
    return out


def _escalation_actions(account: Account, history: History, cycle_date: date, policy: Policy,
                        segment: str, dpd: int, outstanding: int, holds: set[str], entered: date,
                        can_message: bool, kinds: list[str], actions: set[str],
                        reasons: list[str], earliest_disconnection: EarliestDisconnection
                        ) -> NoticeFacts:
    # Credit report: a pre-notice of this spell served at least N days before D, once per
    # calendar month.
    prenotice = None
    for day in history.prenotices:
        if day >= entered and (prenotice is None or day < prenotice):
            prenotice = day
    if prenotice is None:
        reasons.append("credit_report:no_prenotice_served")
    elif (cycle_date - prenotice).days < policy.prenotice_lead_days:
        reasons.append(f"credit_report:prenotice_served_{prenotice}_too_recent")
    elif _any_in_month(history.credit_reports, cycle_date):
        reasons.append("credit_report:already_reported_this_month")
    else:
        actions.add("credit_report")
        reasons.append(f"credit_report:prenotice_served_{prenotice}")

    # Lawyer letter: DPD (per segment, §6) and amount floors, at most one per N days.
    letter_from = lawyer_min_dpd(segment, policy)
    if dpd >= letter_from and outstanding >= policy.lawyer_min_outstanding_fen:
        last = max(history.lawyer_letters, default=None)
        if last is not None and (cycle_date - last).days < policy.lawyer_repeat_days:
            reasons.append(f"lawyer_letter:last_sent_{last}")
        else:
            actions.add("lawyer_letter")
            reasons.append("lawyer_letter:dpd_and_amount" if letter_from == policy.lawyer_min_dpd
                           else f"lawyer_letter:{segment}_from_dpd_{letter_from}")

    # Disconnection: notice, then (from the earliest date on) a proposed order.
    if outstanding < policy.disconnection_min_outstanding_fen:
        reasons.append("disconnection:below_minimum")
        return NO_NOTICE
    if holds & STOPS_DISCONNECTION:
        reasons.append("disconnection:protected:" + "+".join(sorted(holds & STOPS_DISCONNECTION)))
        return NO_NOTICE
    notice = history.pending_notice
    stale = notice is not None and notice.served_on < entered
    if stale:
        # An order rests only on a notice served in the current escalation spell.
        reasons.append(f"disconnection:notice_{notice.notice_id}_of_an_earlier_spell")
        notice = None
    if notice is None:
        earliest = earliest_disconnection(cycle_date)
        winter = protections_on(account, earliest, policy)
        if history.order_released_on is not None and history.order_released_on >= entered:
            # Already cut off in this escalation spell: no second notice.
            reasons.append(f"disconnection:order_released_{history.order_released_on}")
        elif winter:
            # No notice whose earliest date falls where the account cannot be disconnected.
            reasons.append(f"disconnection_notice_withheld:earliest_{earliest}_protected:"
                           + "+".join(sorted(winter)))
        elif can_message:
            kinds.append("disconnection_notice")
            actions.add("disconnection_notice")
            reasons.append(f"disconnection_notice:earliest_{earliest}")
            return NoticeFacts(earliest=earliest)
        else:
            reasons.append("disconnection_notice:waits_for_a_message_channel")
        return NoticeFacts(pending=stale)
    if (cycle_date - notice.earliest_disconnection).days >= policy.notice_valid_days:
        reasons.append(f"disconnection:notice_{notice.notice_id}_lapsed:expired")
        return PENDING_NOTICE
    if cycle_date >= notice.earliest_disconnection:
        actions.add("disconnection_order")
        reasons.append(f"disconnection_order:notice_{notice.notice_id}")
        return NO_NOTICE
    reasons.append(f"disconnection:notice_{notice.notice_id}_until_{notice.earliest_disconnection}")
    return PENDING_NOTICE
