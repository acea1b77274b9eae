"""The auditors' page inside the Airflow UI: account search, timeline, links to task logs.

Plugin FastAPI apps are mounted on the api-server without Airflow's authentication, so every
route here depends on Airflow's own ``get_user``: a valid Airflow JWT from the
``Authorization: Bearer`` header or the ``_token`` cookie the UI sets. The page itself sends a
browser without one to Airflow's login page; the JSON routes answer 401/403. A logged-in user
whose Airflow role is not an auditor's (``arrears_auditor_roles``) is refused with 403.
"""
from __future__ import annotations

from html import escape
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from arrears.paths import TEMPLATES_DIR

URL_PREFIX = "/arrears-audit"
CYCLE_DAG = "arrears_collection_cycle"
# Entries do not name their DAG: the tasks of the other DAGs that act are told by their ids.
_OTHER_DAGS = {
    "collect_proposals": "arrears_disconnection_release", "approve": "arrears_disconnection_release",
    "release": "arrears_disconnection_release", "record_outcome": "arrears_disconnection_release",
    "send_waiting_messages": "arrears_outbox_dispatch",
}
_RELEASE_KINDS = {"approval", "order"}

app = FastAPI(title="Arrears audit trail", docs_url=None, redoc_url=None, openapi_url=None)
_templates = Environment(loader=FileSystemLoader(TEMPLATES_DIR / "audit"),
                         autoescape=select_autoescape(["html"]))


async def current_user(request: Request):
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    bearer = HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if token else None
    return await get_user(request, None, bearer)


# Read-only auditors (and admins) only: the operators who run the cycle and the supervisors who
# approve disconnections do not audit themselves. The page itself approves nothing.
AUDITOR_ROLES_VARIABLE = "arrears_auditor_roles"
DEFAULT_AUDITOR_ROLES = "auditor,viewer,admin"


def auditor_roles() -> frozenset[str]:
    from arrears.settings import get_variable
    value = get_variable(AUDITOR_ROLES_VARIABLE) or DEFAULT_AUDITOR_ROLES
    return frozenset(r.strip().lower() for r in value.split(",") if r.strip())


def user_roles(user) -> frozenset[str]:
    """The user's Airflow role names: SimpleAuthManager users have one ``role``; FAB users a
    list of ``roles`` (objects with a ``name``)."""
    names = []
    if getattr(user, "role", None):
        names.append(str(user.role))
    for role in getattr(user, "roles", None) or ():
        names.append(str(getattr(role, "name", role)))
    return frozenset(n.lower() for n in names)


def refusal(user) -> str:
    """Why this user may not read the audit trail, or "" when they may."""
    allowed = auditor_roles()
    if user_roles(user) & allowed:
        return ""
    have = ", ".join(sorted(user_roles(user))) or "no role"
    return (f"the audit trail is for the Airflow roles {', '.join(sorted(allowed))}; "
            f"{user.get_name()} has {have}: ask an Airflow admin for an auditor role "
            f"(variable {AUDITOR_ROLES_VARIABLE} lists the roles)")


async def auditor(request: Request):
    """A logged-in user with an auditor role; 401 without login, 403 with another role."""
    user = await current_user(request)
    if reason := refusal(user):
        raise HTTPException(status_code=403, detail=reason)
    return user


def _engine():
    from arrears.db import connect
    from arrears.settings import Settings
    return connect(Settings.load().db_url)


def dag_of(kind: str, task_id: str) -> str:
    """The DAG whose task wrote the entry: approvals and orders come from the release DAG."""
    if kind in _RELEASE_KINDS:
        return "arrears_disconnection_release"
    return _OTHER_DAGS.get(task_id, CYCLE_DAG)


def log_link(kind: str, run_id: str, task_id: str, try_number: int) -> str:
    if not run_id or not task_id:
        return ""
    link = (f"/dags/{dag_of(kind, task_id)}/runs/{quote(run_id, safe='')}/tasks/"
            f"{quote(task_id, safe='')}")
    return link + (f"?try_number={try_number}" if try_number else "")


def timeline_json(account_id: str, replays: bool = False) -> list[dict]:
    """What happened to the account, or (``replays``) what replay runs recomputed for it."""
    from arrears.audit.timeline import account_timeline, replay_timeline
    with _engine().connect() as conn:
        steps = (replay_timeline if replays else account_timeline)(conn, account_id)
    return [{**s.__dict__, "log_url": log_link(s.kind, s.run_id, s.task_id, s.try_number)}
            for s in steps]


@app.get("/", response_class=HTMLResponse)
async def page(request: Request, account: str = ""):
    try:
        user = await current_user(request)
    except HTTPException:
        from airflow.api_fastapi.app import get_auth_manager
        login = get_auth_manager().get_url_login(next_url=str(request.url))
        return RedirectResponse(login, status_code=303)
    if reason := refusal(user):
        return HTMLResponse(f"<!doctype html><title>Audit trail: not allowed</title><p>{escape(reason)}</p>",
                            status_code=403)
    account = account.strip()
    steps = timeline_json(account) if account else []
    replays = timeline_json(account, replays=True) if account else []
    html = _templates.get_template("auditor_page.html").render(
        account=account, steps=steps, replays=replays, user=user.get_name(), prefix=URL_PREFIX)
    return HTMLResponse(html)


@app.get("/api/accounts/{account_id}")
async def account_api(account_id: str, user=Depends(auditor)):
    return JSONResponse({"account_id": account_id, "steps": timeline_json(account_id),
                         "replays": timeline_json(account_id, replays=True)})


@app.get("/api/verify")
async def verify_api(full: bool = False, user=Depends(auditor)):
    from arrears.audit import checkpoint
    with _engine().connect() as conn:
        check = checkpoint.verify_full(conn) if full else checkpoint.verify_daily(conn)
    result = check.result
    return {"ok": result.ok, "entries": result.entries, "first_broken_seq": result.first_broken_seq,
            "problem": result.problem, "mode": check.mode,
            "since_seq": check.since.seq if check.since else None, "note": check.note}
