"""The versioned policy configuration: include/policy/default.toml, overridable per portfolio."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from arrears.channels.base import ChannelRule
from arrears.model import PROTECTIONS, SEGMENTS, STAGES
from arrears.money import parse_fen
from arrears.paths import POLICY_DIR
from arrears.policy.segments import SegmentRules, rules_from_dict

# Today's behaviour (CONTRACT §7): one message by email and one by SMS, for every stage.
DEFAULT_SLOTS = (("email",), ("sms",))


class PolicyError(ValueError):
    """A policy file that is missing or malformed."""


@dataclass(frozen=True)
class Policy:
    version: str
    reminder_from: int
    formal_notice_from: int
    escalation_from: int
    min_outstanding_fen: int
    residential_rate: Decimal
    non_residential_current_rate: Decimal
    non_residential_prior_rate: Decimal
    late_fee_minimum_fen: int
    contact_repeat_days: int
    contact_max_messages: int
    contact_cap_days: int
    contact_window: str
    prenotice_lead_days: int
    lawyer_min_dpd: int
    lawyer_min_outstanding_fen: int
    lawyer_repeat_days: int
    disconnection_min_outstanding_fen: int
    disconnection_notice_days: int
    winter_months: frozenset[int]
    disconnection_daily_cap: int
    plan_grace_days: int = 5        # an instalment unpaid this long after its due date breaks the plan
    # Local calendar overrides for disconnection dates (ISO dates), where the library lacks them.
    extra_holidays: tuple[str, ...] = ()
    extra_workdays: tuple[str, ...] = ()
    # [channels]: per stage, the day's messages as slots, each its channels in order of
    # preference ("wechat|sms"); and the registry's plain data about every channel.
    channel_slots: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = ()
    channel_rules: tuple[ChannelRule, ...] = ()
    segments: SegmentRules = SegmentRules()                 # CONTRACT §6 rules and timing
    # Protections and/or segments whose late fee is shown as waived (relief schemes).
    late_fee_waive_for: frozenset[str] = frozenset()

    def slots_for(self, stage: str) -> tuple[tuple[str, ...], ...]:
        return dict(self.channel_slots).get(stage, DEFAULT_SLOTS)

    def rule(self, channel: str) -> ChannelRule:
        return next(r for r in self.channel_rules if r.name == channel)


def _channel_slots(raw: dict, rules: tuple[ChannelRule, ...]) -> tuple:
    """``[channels] <stage> = ["wechat|sms", "email"]`` (``default`` for every stage not named)."""
    known = {r.name for r in rules}
    section = raw.get("channels", {})
    if not isinstance(section, dict):
        raise PolicyError("[channels] must be a table of stage = [\"slot\", ...]")
    out = []
    for stage in STAGES:
        value = section.get(stage, section.get("default"))
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PolicyError(f"[channels] {stage} must be a list of slots like \"wechat|sms\"")
        slots, seen = [], set()
        for text in value:
            slot = tuple(c.strip() for c in text.split("|") if c.strip())
            bad = [c for c in slot if c not in known]
            if not slot or bad:
                raise PolicyError(f"[channels] {stage}: slot {text!r} names "
                                  f"{', '.join(map(repr, bad)) or 'no channel'}; the channels "
                                  f"are {', '.join(sorted(known))}")
            if seen & set(slot):
                raise PolicyError(f"[channels] {stage}: channel(s) {sorted(seen & set(slot))} in "
                                  f"two slots: one message per channel per day")
            seen |= set(slot)
            slots.append(slot)
        out.append((stage, tuple(slots)))
    unknown = set(section) - {*STAGES, "default"}
    if unknown:
        raise PolicyError(f"[channels] has {sorted(unknown)}: use the stages {STAGES} or default")
    return tuple(out)


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and key in base else value
    return out


def policy_from_dict(raw: dict) -> Policy:
    from arrears.channels.registry import rules as channel_rules
    rules = channel_rules()
    try:
        s, t, f, c = raw["stages"], raw["threshold"], raw["late_fee"], raw["contact"]
        cr, ll, d = raw["credit_report"], raw["lawyer_letter"], raw["disconnection"]
        policy = Policy(
            version=str(raw["version"]),
            reminder_from=int(s["reminder_from"]),
            formal_notice_from=int(s["formal_notice_from"]),
            escalation_from=int(s["escalation_from"]),
            min_outstanding_fen=parse_fen(t["min_outstanding"]),
            residential_rate=Decimal(f["residential_per_day"]),
            non_residential_current_rate=Decimal(f["non_residential_current_year_per_day"]),
            non_residential_prior_rate=Decimal(f["non_residential_prior_year_per_day"]),
            late_fee_minimum_fen=parse_fen(f["minimum_total"]),
            contact_repeat_days=int(c["repeat_after_days"]),
            contact_max_messages=int(c["max_messages"]),
            contact_cap_days=int(c["cap_window_days"]),
            contact_window=str(c["window"]),
            prenotice_lead_days=int(cr["prenotice_lead_days"]),
            lawyer_min_dpd=int(ll["min_dpd"]),
            lawyer_min_outstanding_fen=parse_fen(ll["min_outstanding"]),
            lawyer_repeat_days=int(ll["repeat_after_days"]),
            disconnection_min_outstanding_fen=parse_fen(d["min_outstanding"]),
            disconnection_notice_days=int(d["notice_days"]),
            winter_months=frozenset(int(m) for m in d["winter_months"]),
            disconnection_daily_cap=int(d["daily_cap"]),
            plan_grace_days=int(raw.get("payment_plan", {}).get("grace_days", 5)),
            extra_holidays=tuple(str(x) for x in d.get("extra_holidays", ())),
            extra_workdays=tuple(str(x) for x in d.get("extra_workdays", ())),
            channel_slots=_channel_slots(raw, rules),
            channel_rules=rules,
            segments=rules_from_dict(raw.get("segments", {})),
            late_fee_waive_for=frozenset(str(x) for x in f.get("waive_for", ())),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise PolicyError(f"policy is malformed: {exc!r}") from exc
    if not 0 < policy.reminder_from < policy.formal_notice_from < policy.escalation_from:
        raise PolicyError("policy stages must satisfy 0 < reminder < formal_notice < escalation")
    if not policy.late_fee_waive_for <= set(PROTECTIONS) | set(SEGMENTS):
        raise PolicyError(f"policy [late_fee] waive_for {sorted(policy.late_fee_waive_for)}: list "
                          f"protections {PROTECTIONS} and/or segments {SEGMENTS}")
    return policy


@lru_cache(maxsize=16)
def load_policy(portfolio: str = "default", policy_dir: Path = POLICY_DIR) -> Policy:
    """The default policy with ``<portfolio>.toml`` laid over it (any subset of its keys)."""
    def read(name: str) -> dict:
        path = policy_dir / f"{name}.toml"
        if not path.is_file():
            raise PolicyError(f"no policy file {path}: create it or choose another portfolio")
        with path.open("rb") as fh:
            return tomllib.load(fh)

    raw = read("default")
    if portfolio != "default":
        raw = _merge(raw, read(portfolio))
    return policy_from_dict(raw)
