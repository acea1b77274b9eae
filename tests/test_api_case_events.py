"""`POST /arrears/api/case-events` on a running api-server (CONTRACT §8): Airflow authentication,
the poster's name in the record and the audit trail, quarantine with a reason, duplicates."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import date

import pytest
from sqlalchemy import text

from api_server import running_api_server, token
from arrears.audit import trail
from arrears.db import connect
from arrears.ingest import ingest_delivery
from factories import landing

AGENT, PASSWORD = "agent.li", "Agent-Pass-2026"
D = date(2026, 11, 16)


@pytest.fixture(scope="module")
def server(tmp_path_factory, airflow_home):
    tmp = tmp_path_factory.mktemp("api")
    db = tmp / "arrears.db"
    ingest_delivery(connect(f"sqlite:///{db}"), landing(tmp / "landing", [
        ["A1", "王伟", "residential", "", "", "", "", "", ""]],
        [["B1", "A1", "2026-09", "300.00", "2026-10-01"]]), D)
    with running_api_server(tmp, db, {AGENT: ("user", PASSWORD)}) as base:
        yield base, connect(f"sqlite:///{db}")


def post(base: str, body, bearer: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(base + "/arrears/api/case-events", method="POST",
                                     data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


PLAN = {"event_id": "API-P1", "account_id": "A1", "event_type": "payment_plan",
        "effective_date": "2026-11-16", "note": "agreed on the phone",
        "instalments": [{"due_date": "2026-12-10", "amount": "150.00"},
                        {"due_date": "2027-01-10", "amount": "150.00"}]}


def test_refused_without_airflow_authentication(server):
    base, engine = server
    assert post(base, PLAN)[0] == 401
    assert post(base, PLAN, bearer="not.a.jwt")[0] in (401, 403)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM case_events")).scalar_one() == 0


def test_an_agent_records_events_once_and_bad_ones_are_quarantined(server):
    base, engine = server
    jwt = token(base, AGENT, PASSWORD)
    status, body = post(base, PLAN, jwt)
    assert status == 201 and body["status"] == "recorded" and body["recorded_by"] == AGENT
    status, body = post(base, PLAN, jwt)  # the same event again: nothing new
    assert (status, body["status"]) == (200, "duplicate")
    status, body = post(base, {**PLAN, "event_id": "API-P2",
                               "instalments": [{"due_date": "2026-12-10", "amount": "-1"}]}, jwt)
    assert status == 422 and body["status"] == "quarantined"
    assert "instalments" in body["reason"] and "not positive" in body["reason"]
    status, body = post(base, {"event_id": "API-S1", "account_id": "A1",
                               "event_type": "notice_served", "effective_date": "2026-11-16",
                               "note": "credit_prenotice"}, jwt)
    assert status == 201
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT event_id, recorded_by, source, instalments"
                                 " FROM case_events ORDER BY event_id")).all()
        q = conn.execute(text("SELECT file, reason FROM quarantine")).all()
        audit = trail.entries(conn, kind="case_event")
    assert [tuple(r) for r in rows] == [
        ("API-P1", AGENT, "api", "2026-12-10:150.00;2027-01-10:150.00"),
        ("API-S1", AGENT, "api", "")]
    assert [(f, "not positive" in r) for f, r in q] == [("api:case-events", True)]
    assert [(e.entry_key, e.payload["recorded_by"]) for e in audit] == [
        ("case_event/API-P1", AGENT), ("case_event/API-S1", AGENT)]
