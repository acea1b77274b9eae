"""The auditors' page in a running api-server: refused without login; after logging in through
Airflow's own login page, a search shows the account's timeline (headless Debian Chromium)."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest

from api_server import logged_in_page, running_api_server
from arrears.audit import trail
from arrears.audit.trail import Entry

USER, PASSWORD = "auditor", "Audit-Pass-2026"
OPERATOR, OPERATOR_PASSWORD = "operator", "Op-Pass-2026"  # role op: runs DAGs, not an auditor
SCREENSHOT = os.environ.get("ARREARS_SCREENSHOT")  # set to refresh docs/img/auditor_page.png


def _seed(db: Path) -> None:
    from arrears.db import connect
    engine = connect(f"sqlite:///{db}")
    d1, d3 = date(2026, 11, 16), date(2026, 11, 18)
    run1, run3 = "scheduled__2026-11-16T00:30:00+00:00", "scheduled__2026-11-18T00:30:00+00:00"
    trail.record(engine, [
        Entry(key="decision/2026-11-16/A6", kind="decision", account_id="A6", cycle_date=d1,
              run_id=run1, task_id="decide", try_number=1,
              payload={"stage": "escalation", "dpd": 67, "outstanding_fen": 40000,
                       "late_fee_fen": 2680, "actions": [], "holds": ["disputed"],
                       "reasons": ["stage:escalation:dpd_67", "no_messages:disputed",
                                   "escalation_stopped:disputed"], "policy_version": "default-1"}),
        Entry(key="decision/2026-11-18/A6", kind="decision", account_id="A6", cycle_date=d3,
              run_id=run3, task_id="decide", try_number=1,
              payload={"stage": "escalation", "dpd": 69, "outstanding_fen": 40000,
                       "late_fee_fen": 2760, "actions": ["email", "sms", "credit_prenotice"],
                       "holds": [], "reasons": ["stage:escalation:dpd_69", "email:due",
                                                "credit_prenotice:escalation_entry"],
                       "policy_version": "default-1"}),
        Entry(key="batch_file/2026-11-18/lawyer_letters/A6.pdf/A6/" + "b" * 64, kind="batch_file",
              account_id="A6", cycle_date=d3, run_id=run3, task_id="lawyer_letters", try_number=0,
              payload={"batch": "lawyer_letters", "file": "A6.pdf", "sha256": "b" * 64,
                       "outstanding": "400.00", "replay": False}),
        Entry(key="message/2026-11-18:A6:email/sent", kind="message", account_id="A6",
              cycle_date=d3, run_id=run3, task_id="dispatch_messages", try_number=2,
              payload={"channel": "email", "outcome": "sent", "template": "email",
                       "template_version": "ab12", "content_sha256": "f" * 64,
                       "kinds": ["credit_prenotice"]}),
    ])


@pytest.fixture(scope="module")
def api_server(tmp_path_factory, airflow_home):
    tmp = tmp_path_factory.mktemp("ui")
    db = tmp / "arrears.db"
    _seed(db)
    with running_api_server(tmp, db, {USER: ("viewer", PASSWORD),
                                      OPERATOR: ("op", OPERATOR_PASSWORD)}) as base:
        yield base


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_unauthenticated_requests_are_refused(api_server):
    opener = urllib.request.build_opener(_NoRedirect)
    for path in ("/arrears-audit/api/accounts/A6", "/arrears-audit/api/verify"):
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(api_server + path)
        assert err.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as err:  # a forged token is no better
        opener.open(urllib.request.Request(api_server + "/arrears-audit/api/accounts/A6",
                                           headers={"Authorization": "Bearer not.a.jwt"}))
    assert err.value.code in (401, 403)
    with pytest.raises(urllib.error.HTTPError) as err:  # the page sends the browser to login
        opener.open(api_server + "/arrears-audit/?account=A6")
    assert err.value.code == 303 and "login" in err.value.headers["Location"]
    assert "A6" not in err.value.read().decode()


def test_token_from_airflow_opens_the_api(api_server):
    body = json.dumps({"username": USER, "password": PASSWORD}).encode()
    token = json.load(urllib.request.urlopen(urllib.request.Request(
        api_server + "/auth/token", data=body, headers={"Content-Type": "application/json"})))
    got = json.load(urllib.request.urlopen(urllib.request.Request(
        api_server + "/arrears-audit/api/accounts/A6",
        headers={"Authorization": f"Bearer {token['access_token']}"})))
    assert [s["kind"] for s in got["steps"]] == ["decision", "decision", "batch_file", "message"]
    assert got["steps"][3]["log_url"] == ("/dags/arrears_collection_cycle/runs/"
                                          "scheduled__2026-11-18T00%3A30%3A00%2B00%3A00/tasks/"
                                          "dispatch_messages?try_number=2")


def _token(base: str, user: str, password: str) -> str:
    body = json.dumps({"username": user, "password": password}).encode()
    return json.load(urllib.request.urlopen(urllib.request.Request(
        base + "/auth/token", data=body, headers={"Content-Type": "application/json"})))["access_token"]


def test_a_user_without_an_auditor_role_is_refused(api_server):
    token = _token(api_server, OPERATOR, OPERATOR_PASSWORD)
    bearer = {"Authorization": f"Bearer {token}"}
    # The token is good: Airflow's own API lets the operator in ...
    assert urllib.request.urlopen(urllib.request.Request(
        api_server + "/api/v2/dags", headers=bearer)).status == 200
    # ... the audit trail does not, neither its JSON routes nor its page (cookie as the UI sets).
    opener = urllib.request.build_opener(_NoRedirect)
    for path in ("/arrears-audit/api/accounts/A6", "/arrears-audit/api/verify"):
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(urllib.request.Request(api_server + path, headers=bearer))
        assert err.value.code == 403
        assert "op" in json.load(err.value)["detail"]
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(urllib.request.Request(api_server + "/arrears-audit/?account=A6",
                                           headers={"Cookie": f"_token={token}"}))
    assert err.value.code == 403
    page = err.value.read().decode()
    assert "auditor" in page and "decision" not in page and "escalation" not in page
    # The viewer-role auditor with the same kind of cookie sees the page.
    ok = opener.open(urllib.request.Request(
        api_server + "/arrears-audit/?account=A6",
        headers={"Cookie": f"_token={_token(api_server, USER, PASSWORD)}"}))
    assert ok.status == 200 and "escalation" in ok.read().decode()


def test_browser_logs_in_searches_and_sees_the_timeline(api_server):
    with logged_in_page(api_server, "/arrears-audit/", USER, PASSWORD) as page:
        page.fill("#account", "A6")
        page.click("#search")
        page.wait_for_selector("#timeline", timeout=30_000)
        assert "Account A6: 4 steps" in page.inner_text("#timeline-title")
        rows = page.locator("#timeline tr.step")
        assert rows.count() == 4
        first, last = rows.nth(0).inner_text(), rows.nth(3).inner_text()
        assert "2026-11-16" in first and "escalation_stopped:disputed" in first
        assert "email message sent" in last
        links = page.locator("#timeline a")
        assert "/dags/arrears_collection_cycle/runs/" in links.first.get_attribute("href")

        # The same page inside Airflow's UI, as the "Audit trail" entry of the Browse menu.
        page.goto(api_server + "/plugin/arrears-audit")
        frame = page.frame_locator("iframe").first
        frame.locator("#account").fill("A6")
        frame.locator("#search").click()
        frame.locator("#timeline").wait_for(timeout=30_000)
        assert frame.locator("#timeline tr.step").count() == 4
        if SCREENSHOT:
            page.wait_for_timeout(1000)
            page.screenshot(path=SCREENSHOT)
