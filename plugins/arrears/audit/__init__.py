"""The audit trail, its sweep over the cycle's side effects, and what auditors read from it."""
