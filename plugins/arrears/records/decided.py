"""Whose decisions of D a step reads: the real record, or one replay run's own (CONTRACT §4).

A replay (a backfill without allow_contact, any dry run) decides D into ``replay_decisions``,
``replay_decision_actions`` and ``replay_decision_bills``, keyed by its run id, never into
``decisions``: the real record that later cycles, the contact history and the audit read. Every
step after decide reads "D's decisions of this run" through a ``Decided``: its SQL files write
``{decisions}``, ``{decision_actions}`` and ``{decision_bills}`` where they mean this run's
own, and the plain table names where they mean the real record (the history before D).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from sqlalchemy import text

from arrears.cycle.run import CycleRun
from arrears.db.sqlfiles import spelled
from arrears.paths import SQL_DIR

# The tables a decide step writes: the real ones, or their replay_ twins with run_id in the key.
DECIDED_TABLES = ("decisions", "decision_actions", "decision_bills")


@dataclass(frozen=True)
class Decided:
    cycle_date: date
    replay_run: str = ""    # a replay's run id; "" is the real record

    @classmethod
    def of(cls, run: CycleRun) -> Decided:
        return cls(run.cycle_date, run.run_id if run.replay else "")

    @property
    def replay(self) -> bool:
        return bool(self.replay_run)

    def table(self, name: str) -> str:
        """What to read ``name`` from: the real table, or this replay's rows of its twin."""
        if name not in DECIDED_TABLES:
            raise ValueError(f"{name} is not a table a decide step writes")
        return f"(SELECT * FROM replay_{name} WHERE run_id = :run_id)" if self.replay_run else name

    def params(self, **more) -> dict:
        return {"d": self.cycle_date, "run_id": self.replay_run, **more}

    def sql(self, name: str, dialect: str):
        """The statement of ``include/sql/<name>`` reading this run's decisions."""
        return _statement(name, dialect, self.replay)


@lru_cache(maxsize=128)
def _statement(name: str, dialect: str, replay: bool):
    body = (SQL_DIR / name).read_text(encoding="utf-8").strip().rstrip(";")
    source = Decided(date.min, "replay" if replay else "")
    for table in DECIDED_TABLES:
        body = body.replace("{" + table + "}", source.table(table))
    return text(spelled(body, dialect))
