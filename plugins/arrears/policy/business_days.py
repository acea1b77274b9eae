"""Business days for disconnection dates: weekends and mainland-China public holidays.

Holidays and adjusted working days (调休) come from the ``holidays`` library; a portfolio can add
local holidays and working days the library lacks (``extra_holidays`` / ``extra_workdays``).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property

import holidays


@dataclass(frozen=True)
class BusinessCalendar:
    extra_holidays: frozenset[date] = field(default_factory=frozenset)
    extra_workdays: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def from_lists(cls, extra_holidays: Iterable[str] = (), extra_workdays: Iterable[str] = ()):
        return cls(frozenset(date.fromisoformat(d) for d in extra_holidays),
                   frozenset(date.fromisoformat(d) for d in extra_workdays))

    @classmethod
    def for_policy(cls, policy) -> BusinessCalendar:
        """The calendar with the policy's [disconnection] extra_holidays / extra_workdays."""
        try:
            return cls.from_lists(policy.extra_holidays, policy.extra_workdays)
        except ValueError as exc:
            raise ValueError(f"policy [disconnection] extra_holidays/extra_workdays: {exc}; "
                             "write dates as YYYY-MM-DD") from None

    @cached_property
    def _cn(self) -> holidays.HolidayBase:
        return holidays.country_holidays("CN")

    def is_business_day(self, day: date) -> bool:
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        # The library knows weekends, public holidays and adjusted working weekends (调休).
        return self._cn.is_working_day(day)

    def next_business_day(self, day: date) -> date:
        """``day`` itself when it is a business day, else the next one."""
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

    def earliest_disconnection(self, served_on: date, notice_days: int) -> date:
        return self.next_business_day(served_on + timedelta(days=notice_days))
