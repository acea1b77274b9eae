"""Champion/challenger (CONTRACT §5): which arm an account is in, and which limits both arms keep.

The arm comes from a hash of the experiment id and the account id, so it is the same on every
day, rerun and worker, needs no stored assignment table, and a new experiment id reshuffles.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from arrears.policy.config import Policy

CHAMPION, CHALLENGER = "champion", "challenger"
ARMS = (CHAMPION, CHALLENGER)
_SCALE = float(1 << 64)


def bucket(experiment_id: str, account_id: str) -> float:
    """A uniform number in [0, 1) fixed by the two ids (the first 8 bytes of a SHA-256)."""
    digest = hashlib.sha256(f"{experiment_id}\x1f{account_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def arm_of(experiment_id: str, account_id: str, share: float) -> str:
    return CHALLENGER if bucket(experiment_id, account_id) < share else CHAMPION


@dataclass(frozen=True)
class Arms:
    """The policy each account is decided by: the champion, or the challenger for its share."""
    champion: Policy

    @property
    def challenger(self) -> Policy | None:
        exp = self.champion.experiment
        return exp.challenger_policy if exp else None

    @property
    def experiment_id(self) -> str:
        return self.champion.experiment.id if self.champion.experiment else ""

    @property
    def policies(self) -> tuple[Policy, ...]:
        return (self.champion,) if self.challenger is None else (self.champion, self.challenger)

    def policy_for(self, account_id: str) -> Policy:
        exp = self.champion.experiment
        if exp is None or exp.challenger_policy is None:
            return self.champion
        return exp.challenger_policy if arm_of(exp.id, account_id, exp.share) == CHALLENGER else self.champion

    def arm_of_version(self, policy_version: str) -> str:
        """The arm a decision belongs to, from the policy version it records."""
        if self.challenger is None:
            return ""
        return CHALLENGER if policy_version == self.challenger.version else CHAMPION
