"""The agents' page in a running api-server (headless Debian Chromium): after Airflow's login an
agent opens today's call list, picks an account, records a payment plan with instalments (saved
through POST /arrears/api/case-events, in the timeline beside it) and sees a bad entry refused
with its reason; the field-visit list opens too."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import text

import batches_scenario as scenario
from api_server import logged_in_page, running_api_server
from arrears.db import connect

AGENT, PASSWORD = "agent.li", "Agent-Pass-2026"
SCREENSHOT_DIR = os.environ.get("ARREARS_SCREENSHOT_DIR")  # set to refresh docs/img/agents_*.png


@pytest.fixture(scope="module")
def server(tmp_path_factory, airflow_home):
    tmp = tmp_path_factory.mktemp("agents")
    db = tmp / "arrears.db"
    engine = connect(f"sqlite:///{db}")
    scenario.build(engine, tmp)
    with running_api_server(tmp, db, {AGENT: ("user", PASSWORD)}) as base:
        yield base, engine


def test_an_agent_records_a_plan_from_the_call_list(server):
    base, engine = server
    with logged_in_page(base, "/arrears/agents/", AGENT, PASSWORD,
                        {"width": 1400, "height": 800}) as page:
        assert "Call list of 2026-11-16" in page.inner_text("h1")
        assert [page.locator("#worklist tr.item td").nth(0).inner_text()] == ["A1"]
        page.click("#worklist a.open")
        page.wait_for_selector("#record", timeout=30_000)
        assert "Account A1" in page.inner_text("#account-title")

        page.select_option("#event_type", "payment_plan")
        page.fill("#effective_date", "2026-11-16")
        page.fill("#instalments", "2026-12-10 75.00\n2027-01-10 75.00")
        page.fill("#note", "agreed on the phone")
        page.click("#save")
        page.wait_for_selector("#result.recorded", timeout=30_000)
        page.wait_for_selector("#timeline", timeout=30_000)  # the page reloads with it
        assert "payment_plan effective 2026-11-16" in page.inner_text("#timeline")
        assert f"recorded by {AGENT}" in page.inner_text("#timeline")
        if SCREENSHOT_DIR:
            page.screenshot(path=os.path.join(SCREENSHOT_DIR, "agents_page.png"))

        page.select_option("#event_type", "promise_to_pay")
        page.fill("#amount", "-5")
        page.fill("#until_date", "2026-11-30")
        page.click("#save")
        page.wait_for_selector("#result.quarantined", timeout=30_000)
        assert "Not saved" in page.inner_text("#result")
        assert "not positive" in page.inner_text("#result")

        page.click("#list-field_visit")
        page.wait_for_selector("#worklist", timeout=30_000)
        assert "Field visits of 2026-11-16" in page.inner_text("h1")
        assert "A7" in page.inner_text("#worklist")

        # The same page inside Airflow's UI (Browse menu).
        page.goto(base + "/plugin/arrears-agents")
        frame = page.frame_locator("iframe").first
        frame.locator("#worklist").wait_for(timeout=30_000)
        if SCREENSHOT_DIR:
            page.wait_for_timeout(1000)
            page.screenshot(path=os.path.join(SCREENSHOT_DIR, "agents_in_airflow.png"))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT account_id, event_type, instalments, recorded_by"
                                 " FROM case_events WHERE source = 'api'")).all()
    assert [tuple(r) for r in rows] == [("A1", "payment_plan", "2026-12-10:75.00;2027-01-10:75.00",
                                         AGENT)]
