"""Open credit-bureau objections on D (CONTRACT §8), from the record through the pure rule of
arrears.policy.objections: the bureau file flags their accounts as disputed, the cycle report
lists them with the days left to answer, and ops get one mail per objection past its threshold."""
from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import date
from itertools import groupby

from sqlalchemy import Connection, Engine, text

from arrears.db.values import as_date
from arrears.db import sql
from arrears.model import CaseEvent
from arrears.policy.config import Policy
from arrears.policy.objections import Objection, open_objection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenObjection:
    account_id: str
    objection: Objection


def open_objections(conn: Connection, cycle_date: date, policy: Policy) -> list[OpenObjection]:
    rows = conn.execute(sql("batches/objection_events.sql", conn.dialect.name), {"d": cycle_date})
    out = []
    for aid, events in groupby(rows, key=lambda r: r[0]):
        found = open_objection([CaseEvent(e[1], e[2], as_date(e[3])) for e in events], cycle_date,
                               policy.objection_answer_days, policy.objection_alert_after_days)
        if found is not None:
            out.append(OpenObjection(aid, found))
    return out


def alert_overdue(engine: Engine, cycle_date: date, policy: Policy) -> list[str]:
    """Mail ops once per objection open past the threshold; returns the accounts alerted now.
    The alert row and the mail share a transaction: a failed send is retried by the next run."""
    from arrears.ops.alerts import SMTP_CONN_ID, OpsFailureNotifier, ops_address
    with engine.connect() as conn:
        due = [o for o in open_objections(conn, cycle_date, policy) if o.objection.alert]
    alerted = []
    for item in due:
        o = item.objection
        with engine.begin() as conn:
            if conn.execute(text("SELECT 1 FROM objection_alerts WHERE event_id = :e"),
                            {"e": o.event_id}).first():
                continue
            to = ops_address()
            conn.execute(text("INSERT INTO objection_alerts (event_id, account_id, cycle_date,"
                              " sent_to) VALUES (:e, :a, :d, :t)"),
                         {"e": o.event_id, "a": item.account_id, "d": cycle_date, "t": to})
            subject = (f"[arrears] credit-bureau objection of account {item.account_id} open "
                       f"{o.day} days: {o.days_left} day(s) left to answer")
            body = (f"<p>The objection {html.escape(o.event_id)} of account "
                    f"<b>{html.escape(item.account_id)}</b> was raised on {o.raised_on} and is "
                    f"on its day {o.day} of {policy.objection_answer_days}.</p><p>Answer it with "
                    "the bureau, then record a <code>bureau_objection_resolved</code> case event "
                    "(POST /arrears/api/case-events or the extract): until then every bureau "
                    "record of the account is flagged as disputed.</p>")
            OpsFailureNotifier(smtp_conn_id=SMTP_CONN_ID, to=to, subject=subject,
                               html_content=body).notify({})
            log.warning("objection alert for %s sent to %s", item.account_id, to)
            alerted.append(item.account_id)
    return alerted
