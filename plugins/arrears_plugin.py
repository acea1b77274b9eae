"""The project's Airflow plugin: the auditors' page (a FastAPI app shown in the UI), the JSON API
under /arrears/api (case events, CONTRACT §8) and the task
listener that masks personal data in task logs. The code lives in the ``arrears`` package."""
from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from arrears.api import app as api
from arrears.audit import listener
from arrears.audit.web import URL_PREFIX, app


class ArrearsPlugin(AirflowPlugin):
    name = "arrears"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Arrears audit trail"},
                    {"app": api.app, "url_prefix": api.URL_PREFIX, "name": "Arrears API"}]
    external_views = [{
        "name": "Audit trail",
        "href": URL_PREFIX + "/",
        "url_route": "arrears-audit",
        "category": "browse",
        "destination": "nav",
    }, {
        "name": "Agents' lists",
        "href": api.URL_PREFIX + "/agents/",
        "url_route": "arrears-agents",
        "category": "browse",
        "destination": "nav",
    }]
    listeners = [listener]
