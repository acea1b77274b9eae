"""The domain's records: what the extract says, what earlier cycles did, what the policy decides."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from arrears.channels import NAMES as CHANNELS  # one folder per channel under arrears/channels/

STAGES = ("current", "reminder", "formal_notice", "escalation")
# Contract order of the `actions` list (CONTRACT §3): the channels' messages first.
ACTIONS = (
    *CHANNELS, "call_list", "credit_prenotice", "lawyer_letter", "credit_report",
    "disconnection_notice", "disconnection_order", "field_visit",
)
# Contract order of the holds table (CONTRACT §2): one opt-out hold per channel.
HOLDS = (
    "disputed", "promise_to_pay", "payment_plan", "deceased", "protected_medical",
    "protected_winter", *(f"opt_out_{c}" for c in CHANNELS), "below_threshold",
)
# Message kinds, consolidated into one message per channel per day.
MESSAGE_KINDS = ("reminder", "formal_notice", "credit_prenotice", "disconnection_notice",
                 "disconnection_cancelled")
EVENT_TYPES = ("dispute_opened", "dispute_closed", "promise_to_pay", "payment_plan",
               "plan_broken", "deceased", "notice_served", "call_outcome", "bureau_objection",
               "bureau_objection_resolved")
# What a `notice_served` event's note names (CONTRACT §8) and a `call_outcome`'s note starts with.
SERVED_NOTICES = ("credit_prenotice", "disconnection_notice")
CALL_OUTCOMES = ("reached", "no_answer", "wrong_number", "refused")
PROTECTIONS = ("medical_device", "low_income", "five_guarantee")
CUSTOMER_CLASSES = ("residential", "non_residential")
LANGUAGES = ("zh-CN", "en")
# Customer segments (CONTRACT §6), in the order of precedence of their rules.
SEGMENTS = ("disputing", "hardship", "wilful", "forgetful", "new")


# Account, OpenBill, CaseEvent, History and Decision are built for every account of every cycle
# (a million a day): they are plain slotted dataclasses, not frozen ones, whose __init__ costs
# about 1.5 µs more per record (issue 13). Nothing changes them after they are built.
@dataclass(slots=True)
class Account:
    account_id: str
    holder_name: str
    customer_class: str
    service_address: str = ""
    email: str = ""          # already validated: blank when missing or invalid
    mobile: str = ""         # already normalised to E.164: blank when missing or invalid
    language: str = "zh-CN"
    protections: frozenset[str] = frozenset()
    opt_out: frozenset[str] = frozenset()
    wechat_openid: str = ""  # CONTRACT §7: WeChat official-account openid
    app_user_id: str = ""    # CONTRACT §7: the customer's id in the utility's app (push)

    def address(self, field_name: str) -> str:
        """The account's own address in a channel's address column ('' when it has none)."""
        return getattr(self, field_name, "") or ""


@dataclass(slots=True)
class OpenBill:
    """A bill as it stands on the cycle date, after that day's payments were applied."""
    bill_id: str
    bill_period: str         # YYYY-MM
    due_date: date
    open_fen: int


@dataclass(slots=True)
class CaseEvent:
    event_id: str
    event_type: str
    effective_date: date
    amount_fen: int | None = None
    until_date: date | None = None
    note: str = ""
    instalments: tuple[tuple[date, int], ...] = ()   # a payment plan's (due date, fen), in order


@dataclass(frozen=True)
class Notice:
    """A disconnection notice served by an earlier cycle and still pending."""
    notice_id: str
    served_on: date
    earliest_disconnection: date


@dataclass(frozen=True)
class Payment:
    """A payment as the record knows it, for the segment rules."""
    paid_on: date
    still_overdue: bool = False  # the account still had overdue bills after it: a part payment


@dataclass(frozen=True)
class SegmentFacts:
    """What the account did in the segment rules' windows (CONTRACT §6), as of D."""
    payments: tuple[Payment, ...] = ()
    reminders: tuple[date, ...] = ()          # days a reminder was delivered
    notices_served: tuple[date, ...] = ()     # days a notice was served (delivered)
    broken_promises: tuple[date, ...] = ()    # until_date of each promise found unkept
    broken_plans: tuple[date, ...] = ()       # days a plan broke by a missed instalment (§8)


@dataclass(slots=True)
class History:
    """What earlier, non-replay cycles (strictly before D) decided for the account, and what
    happened: messages on their way or sent, notices served, addresses that failed for good.
    Read from the decision state (arrears.cycle.state), ``lawyer_letters``, ``credit_reports``
    and ``notices_decided`` hold only the latest date of each (of each notice): the policy may
    ask only what the latest answers (the latest itself, or whether any is on or after a given
    day; all are before D), never count them."""
    previous_stage: str | None = None
    stage_entered_on: date | None = None           # of previous_stage
    messages: tuple[tuple[date, str], ...] = ()    # (cycle date, channel) of every message
    prenotices: tuple[date, ...] = ()              # service dates of credit pre-notices
    lawyer_letters: tuple[date, ...] = ()
    credit_reports: tuple[date, ...] = ()
    pending_notice: Notice | None = None
    cancelled_notice: Notice | None = None       # cancelled before D, customer not yet told
    order_released_on: date | None = None        # latest work order released (on or before D)
    segment_facts: SegmentFacts = SegmentFacts()
    notices_decided: tuple[tuple[date, str], ...] = ()   # (cycle date, notice) decided before D
    contact_gaps: frozenset[tuple[str, str]] = frozenset()  # (channel, address) failed for good


@dataclass(slots=True)
class Decision:
    account_id: str
    cycle_date: date
    stage: str
    stage_entered_on: date
    dpd: int
    outstanding_fen: int
    late_fee_fen: int
    actions: tuple[str, ...]
    holds: tuple[str, ...]
    message_kinds: tuple[str, ...]
    reasons: tuple[str, ...]          # one rule code per action taken or withheld
    policy_version: str
    bill_fees: tuple[tuple[str, int, int], ...] = field(default=())  # (bill_id, days, fee fen)
    segment: str = "new"               # CONTRACT §6; its rule is a reason code
    late_fee_waived: bool = False      # the fee is shown as waived (policy late_fee.waive_for)
    # What later steps need, as data (reason codes are for people): the earliest disconnection
    # date of the notice decided today, whether an earlier notice is still open with no order
    # on it today, and the notices staff must serve in person (SERVED_NOTICES order).
    disconnection_earliest: date | None = None
    notice_pending: bool = False
    serve_in_person: tuple[str, ...] = ()
