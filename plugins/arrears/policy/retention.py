"""How long the collection record keeps what (CONTRACT §9): pure date arithmetic, no I/O.

Every period is "kept through the last day, purged from the day after": a raw quarantined row
of D with a 90-day period is kept on D+90 and purged on D+91; a message of 2026-03-01 with a
3-year period is kept on 2029-03-01 and purged from 2029-03-02. Years are calendar years (a
29 February start ends on 28 February).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from arrears.policy.config import PolicyError, raw_policy


@dataclass(frozen=True)
class Retention:
    contact_evidence_years: int = 3
    negative_credit_years: int = 5
    quarantine_raw_days: int = 90
    left_extract_floor_days: int = 90


def retention_from_dict(raw: dict) -> Retention:
    section = raw.get("retention", {})
    try:
        rules = Retention(**{k: int(v) for k, v in section.items()})
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"policy [retention] is malformed: {exc}; its keys are "
                          f"{', '.join(Retention.__dataclass_fields__)} (whole numbers)") from exc
    if min(rules.__dict__.values()) < 0:
        raise PolicyError("policy [retention] periods must not be negative")
    return rules


def load_retention(portfolio: str = "default") -> Retention:
    return retention_from_dict(raw_policy(portfolio))


def add_years(start: date, years: int) -> date:
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February into a year without one
        return start.replace(year=start.year + years, day=28)


def last_kept_years(start: date, years: int) -> date:
    return add_years(start, years)


def last_kept_days(start: date, days: int) -> date:
    return start + timedelta(days=days)


def expired(last_kept: date, as_of: date) -> bool:
    return as_of > last_kept


def newest_expired_start_years(as_of: date, years: int) -> date:
    """The latest start date whose ``years``-year period has run out by ``as_of``: everything
    dated on or before it is purged (a cut-off for a query)."""
    day = add_years(as_of, -years)
    while not expired(last_kept_years(day, years), as_of):
        day -= timedelta(days=1)
    while expired(last_kept_years(day + timedelta(days=1), years), as_of):
        day += timedelta(days=1)
    return day


def newest_expired_start_days(as_of: date, days: int) -> date:
    return as_of - timedelta(days=days + 1)


@dataclass(frozen=True)
class AccountRecord:
    """What decides how long an account's personal data stays after it left the extract."""
    account_id: str
    left_on: date                      # the first extract without it
    last_contact: date | None = None   # latest message, letter or notice
    last_reported: date | None = None  # latest credit-bureau report of it


def personal_data_last_kept(account: AccountRecord, rules: Retention) -> tuple[date, str]:
    """The last day its personal data is kept and the rule that sets it: the longest period
    that applies. Leaving the extract ends its default, so a reported account is kept for the
    negative-credit period from then (objections to the bureau record need the holder)."""
    periods = [(last_kept_days(account.left_on, rules.left_extract_floor_days),
                f"left_extract:{account.left_on}+{rules.left_extract_floor_days}d")]
    if account.last_contact is not None:
        periods.append((last_kept_years(account.last_contact, rules.contact_evidence_years),
                        f"contact_evidence:{account.last_contact}+{rules.contact_evidence_years}y"))
    if account.last_reported is not None:
        periods.append((last_kept_years(account.left_on, rules.negative_credit_years),
                        f"negative_credit:default_ended_{account.left_on}"
                        f"+{rules.negative_credit_years}y"))
    return max(periods)


def negative_info_reportable(default_ended_on: date | None, as_of: date,
                             rules: Retention) -> bool:
    """Negative credit information may appear in bureau output through the 5th anniversary
    of the day its default ended (征信业管理条例 Art. 16); a default still running is reportable."""
    if default_ended_on is None:
        return True
    return not expired(last_kept_years(default_ended_on, rules.negative_credit_years), as_of)
