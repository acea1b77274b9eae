"""The versioned policy configuration: include/policy/default.toml, overridable per portfolio."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from arrears.money import parse_fen
from arrears.paths import POLICY_DIR


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
    # Local calendar overrides for disconnection dates (ISO dates), where the library lacks them.
    extra_holidays: tuple[str, ...] = ()
    extra_workdays: tuple[str, ...] = ()


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and key in base else value
    return out


def policy_from_dict(raw: dict) -> Policy:
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
            extra_holidays=tuple(str(x) for x in d.get("extra_holidays", ())),
            extra_workdays=tuple(str(x) for x in d.get("extra_workdays", ())),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise PolicyError(f"policy is malformed: {exc!r}") from exc
    if not 0 < policy.reminder_from < policy.formal_notice_from < policy.escalation_from:
        raise PolicyError("policy stages must satisfy 0 < reminder < formal_notice < escalation")
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
