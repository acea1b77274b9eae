"""Disconnection: notices served by the cycle, proposed orders, and the supervisor-approved
release of work orders (CONTRACT §2 and §3)."""
from arrears.disconnection.cycle import CycleOutcome, disconnection_step, notice_id_for
from arrears.disconnection.release import ReleaseOutcome, Safety, release_batch, record_answer

__all__ = ["CycleOutcome", "ReleaseOutcome", "Safety", "disconnection_step", "notice_id_for",
           "record_answer", "release_batch"]
