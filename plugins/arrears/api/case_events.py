"""``POST /arrears/api/case-events`` (CONTRACT §8): agents and the back office record what
happened (call outcomes, promises, plans with instalments, in-person service, bureau objections).

Airflow authentication: a valid Airflow JWT (``Authorization: Bearer`` or the UI's cookie); the
poster's user name goes with the event into the database and the audit trail. Answers: 201 for a
new event, 200 for the same event seen again, 422 with the reason for a quarantined one.
"""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse

from arrears.audit.web import current_user

router = APIRouter()
_STATUS = {"recorded": 201, "duplicate": 200, "quarantined": 422}


def _settings():
    from arrears.db import connect
    from arrears.settings import Settings
    settings = Settings.load()
    return connect(settings.db_url), settings.timezone


@router.post("/case-events")
def post_case_event(body: object = Body(...), user=Depends(current_user)) -> JSONResponse:
    from arrears.ingest.posted import post_event
    engine, tz = _settings()
    outcome = post_event(engine, body, user.get_name(), datetime.now(timezone.utc), tz)
    return JSONResponse(status_code=_STATUS[outcome.status], content={
        "status": outcome.status, "event_id": outcome.event_id,
        "known_from": outcome.known_from.isoformat(), "reason": outcome.reason,
        "recorded_by": user.get_name()})
