"""The collection policy as pure functions: no I/O, no Airflow, no database.

Everything the cycle decides about an account is computed by :func:`decide` from plain records,
so each rule of CONTRACT §2 can be tested on its own.
"""
from arrears.policy.config import Policy, PolicyError, load_policy
from arrears.policy.decide import decide_account
from arrears.policy.holds import active_holds
from arrears.policy.late_fee import account_late_fee, bill_late_fee
from arrears.policy.stages import days_past_due, stage_for

__all__ = [
    "Policy", "PolicyError", "load_policy", "decide_account", "active_holds", "account_late_fee",
    "bill_late_fee", "days_past_due", "stage_for",
]
