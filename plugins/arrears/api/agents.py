"""The agents' page (CONTRACT §8), a plugin view inside the Airflow UI at ``/arrears/agents/``:
today's call list or field-visit list, and for the chosen account its timeline next to a form
that records what happened (a call outcome, a promise, a plan with instalments, a notice served
in person). The form posts to ``POST /arrears/api/case-events``, so the page adds no rule of its
own: validation, quarantine and the audit trail are the API's.

Airflow authentication as on the auditors' page: without a valid token the browser is sent to
Airflow's login page.
"""
from __future__ import annotations

from datetime import date

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import text

from arrears.audit.web import current_user, timeline_json
from arrears.model import CALL_OUTCOMES, SERVED_NOTICES
from arrears.paths import TEMPLATES_DIR

router = APIRouter()
LISTS = {"call_list": "Call list", "field_visit": "Field visits"}
_templates = Environment(loader=FileSystemLoader(TEMPLATES_DIR / "agents"),
                         autoescape=select_autoescape(["html"]))


def _latest_cycle(engine) -> date | None:
    from arrears.db.values import as_date
    with engine.connect() as conn:
        return as_date(conn.execute(text(
            "SELECT MAX(cycle_date) FROM decisions WHERE replay = 0")).scalar())


@router.get("/", response_class=HTMLResponse)
async def agents_page(request: Request, list: str = "call_list", account: str = ""):
    try:
        user = await current_user(request)
    except HTTPException:
        from airflow.api_fastapi.app import get_auth_manager
        login = get_auth_manager().get_url_login(next_url=str(request.url))
        return RedirectResponse(login, status_code=303)
    from arrears.api.case_events import _settings
    from arrears.batches.agent_lists import list_rows
    from arrears.policy import load_policy
    engine, tz = _settings()
    which = list if list in LISTS else "call_list"
    day = _latest_cycle(engine)
    rows = list_rows(engine, day, which, load_policy()) if day else []
    account = account.strip()
    html = _templates.get_template("agents_page.html").render(
        user=user.get_name(), lists=LISTS, which=which, day=day, rows=rows, account=account,
        steps=timeline_json(account) if account else [], outcomes=CALL_OUTCOMES,
        notices=SERVED_NOTICES, today=date.today().isoformat(), api="/arrears/api/case-events",
        prefix="/arrears/agents")
    return HTMLResponse(html)
