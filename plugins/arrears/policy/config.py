"""The versioned policy configuration: include/policy/default.toml, overridable per portfolio."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cached_property, lru_cache
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
    objection_answer_days: int = 20     # a bureau objection must be answered within this
    objection_alert_after_days: int = 15  # ops are alerted once one is open longer than this
    # A notice lapses this many days after its earliest disconnection date without an order.
    notice_valid_days: int = 30
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
    # [costs]: what one action costs (fen), for the what-if's report; optional.
    unit_costs: tuple[tuple[str, int], ...] = ()
    # [experiment]: champion/challenger (CONTRACT §5); None when no experiment runs.
    experiment: Experiment | None = None

    def slots_for(self, stage: str) -> tuple[tuple[str, ...], ...]:
        return self._slots.get(stage, DEFAULT_SLOTS)

    def rule(self, channel: str) -> ChannelRule:
        return self._rules[channel]

    # Looked up per account and channel a million times a cycle: built once per policy.
    @cached_property
    def _slots(self) -> dict[str, tuple[tuple[str, ...], ...]]:
        return dict(self.channel_slots)

    @cached_property
    def _rules(self) -> dict[str, ChannelRule]:
        return {r.name: r for r in self.channel_rules}

    @cached_property
    def counted_channels(self) -> frozenset[str]:
        """The channels that count toward the contact limits of CONTRACT §2."""
        return frozenset(r.name for r in self.channel_rules if r.counts)


@dataclass(frozen=True)
class Experiment:
    """A challenger policy tried on a share of the accounts (see policy/experiment.py)."""
    id: str
    challenger: str            # the challenger's portfolio: include/policy/<challenger>.toml
    share: float               # 0 < share <= 1: the challenger's share of the accounts
    challenger_policy: Policy | None = None   # resolved by load_policy


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
            objection_answer_days=int(raw.get("bureau_objection", {}).get("answer_days", 20)),
            objection_alert_after_days=int(
                raw.get("bureau_objection", {}).get("alert_after_days", 15)),
            notice_valid_days=int(d.get("notice_valid_days", 30)),
            extra_holidays=tuple(str(x) for x in d.get("extra_holidays", ())),
            extra_workdays=tuple(str(x) for x in d.get("extra_workdays", ())),
            channel_slots=_channel_slots(raw, rules),
            channel_rules=rules,
            segments=rules_from_dict(raw.get("segments", {})),
            late_fee_waive_for=frozenset(str(x) for x in f.get("waive_for", ())),
            unit_costs=tuple(sorted((str(k), parse_fen(v)) for k, v in raw.get("costs", {}).items())),
            experiment=_experiment(raw.get("experiment")),
        )
    except PolicyError:
        raise
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise PolicyError(f"policy is malformed: {exc!r}") from exc
    if not 0 < policy.reminder_from < policy.formal_notice_from < policy.escalation_from:
        raise PolicyError("policy stages must satisfy 0 < reminder < formal_notice < escalation")
    if not policy.late_fee_waive_for <= set(PROTECTIONS) | set(SEGMENTS):
        raise PolicyError(f"policy [late_fee] waive_for {sorted(policy.late_fee_waive_for)}: list "
                          f"protections {PROTECTIONS} and/or segments {SEGMENTS}")
    return policy


def _experiment(raw: dict | None) -> Experiment | None:
    if not raw:
        return None
    experiment = Experiment(id=str(raw["id"]).strip(), challenger=str(raw["challenger"]).strip(),
                            share=float(raw["share"]))
    if not experiment.id or not experiment.challenger:
        raise PolicyError("policy [experiment] needs a non-empty id and challenger")
    if not 0 < experiment.share <= 1:
        raise PolicyError(f"policy [experiment] share {experiment.share} must lie in (0, 1]")
    return experiment


# Limits the contract sets for every account: a challenger may be stricter, never looser.
# (field, "min" = the challenger's value may not be lower, "max" = may not be higher)
_BINDING = (("contact_max_messages", "max"), ("contact_cap_days", "min"),
            ("contact_repeat_days", "min"), ("prenotice_lead_days", "min"),
            ("disconnection_notice_days", "min"), ("lawyer_repeat_days", "min"))


def check_challenger(champion: Policy, challenger: Policy) -> None:
    """Refuse a challenger that would loosen a contact rule or a protection, or that could not be
    told apart from the champion in the decisions (same version)."""
    if challenger.version == champion.version:
        raise PolicyError(f"challenger policy version {challenger.version!r} equals the "
                          "champion's: give the challenger file its own `version`")
    for name, bound in _BINDING:
        mine, theirs = getattr(champion, name), getattr(challenger, name)
        if (bound == "max" and theirs > mine) or (bound == "min" and theirs < mine):
            raise PolicyError(
                f"challenger {challenger.version!r} loosens {name} ({theirs} against the "
                f"champion's {mine}): the contract's limits bind both arms; make it at least as strict")
    if not champion.winter_months <= challenger.winter_months:
        raise PolicyError(f"challenger {challenger.version!r} drops protected winter months "
                          f"{sorted(champion.winter_months - challenger.winter_months)}")


def _read_portfolio(portfolio: str, policy_dir: Path) -> dict:
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
    return raw


@lru_cache(maxsize=16)
def load_policy(portfolio: str = "default", policy_dir: Path = POLICY_DIR) -> Policy:
    """The portfolio's policy; with an ``[experiment]``, its challenger policy resolved and checked."""
    policy = policy_from_dict(_read_portfolio(portfolio, policy_dir))
    exp = policy.experiment
    if exp is not None:
        if exp.challenger == portfolio:
            raise PolicyError(f"experiment {exp.id!r}: the challenger must be another portfolio "
                              f"than {portfolio!r}")
        # The challenger decides its accounts alone: an [experiment] it inherits is not nested.
        raw = _read_portfolio(exp.challenger, policy_dir)
        raw.pop("experiment", None)
        challenger = policy_from_dict(raw)
        check_challenger(policy, challenger)
        policy = replace(policy, experiment=replace(exp, challenger_policy=challenger))
    return policy


def raw_policy(portfolio: str = "default", policy_dir: Path = POLICY_DIR) -> dict:
    """The portfolio's policy as parsed TOML, for sections read by their own modules
    (``[retention]``: arrears.policy.retention)."""
    return _read_portfolio(portfolio, policy_dir)
