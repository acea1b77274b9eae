"""The plugin's second FastAPI app, mounted at ``/arrears`` on the api-server: the JSON API of
CONTRACT §7/§8 under ``/arrears/api/...``. Routes protect themselves (plugin apps get no
Airflow authentication of their own): each depends on ``arrears.audit.web.current_user``."""
from __future__ import annotations

from fastapi import FastAPI

from arrears.api import agents, case_events, receipts

URL_PREFIX = "/arrears"

app = FastAPI(title="Arrears", docs_url=None, redoc_url=None, openapi_url=None)
app.include_router(case_events.router, prefix="/api")
app.include_router(agents.router, prefix="/agents")
app.include_router(receipts.router, prefix="/api")
