"""Where each instalment plan stands on D, for the people who work the accounts (the agents'
lists and page): the record (plan events and payments known as of D) through the same pure rule
the decisions use (arrears.policy.plans)."""
from __future__ import annotations

from datetime import date
from itertools import groupby

from sqlalchemy import Connection

from arrears.db.values import as_date
from arrears.db import sql
from arrears.ingest.validate import parse_instalments
from arrears.model import CaseEvent
from arrears.policy.config import Policy
from arrears.policy.plans import PlanStatus, plan_of


def plan_statuses(conn: Connection, cycle_date: date, policy: Policy) -> dict[str, PlanStatus]:
    """account_id -> the status of its instalment plan in force on D (accounts without one are
    absent)."""
    dialect = conn.dialect.name
    params = {"d": cycle_date, "lo": "", "hi": None}
    events = {aid: [CaseEvent(e[1], e[2], as_date(e[3]), e[4], as_date(e[5]), e[6],
                              parse_instalments(e[7])) for e in rows]
              for aid, rows in groupby(conn.execute(sql("batches/plan_events.sql", dialect),
                                                    params), key=lambda r: r[0])}
    paid: dict[str, list[tuple[date, int]]] = {}
    for aid, day, fen in conn.execute(sql("cycle/plan_payments.sql", dialect), params):
        paid.setdefault(aid, []).append((as_date(day), fen))
    out = {}
    for aid, case in events.items():
        status = plan_of(case, paid.get(aid, ()), cycle_date, policy.plan_grace_days)
        if status is not None:
            out[aid] = status
    return out
