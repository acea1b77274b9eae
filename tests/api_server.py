"""A real Airflow api-server for tests of the plugin's pages and API: SimpleAuthManager users,
a JWT secret, the collection database given by ``AIRFLOW_CONN_ARREARS_DB``."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_api_server(tmp: Path, db: Path, users: dict[str, tuple[str, str]],
                       env: dict[str, str] | None = None):
    """Start ``airflow api-server`` on a free port; yields its base URL. ``users``: name ->
    (role, password). ``db``: the SQLite collection database (``arrears_db``)."""
    passwords = tmp / "passwords.json"
    passwords.write_text(json.dumps({u: p for u, (_, p) in users.items()}))
    port = free_port()
    conn = {"conn_type": "sqlite", "host": str(db)}
    full = {**os.environ,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                f"{u}:{role}" for u, (role, _) in users.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": "arrears-test-secret",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW_CONN_ARREARS_DB": json.dumps(conn),
            "PYTHONPATH": str(REPO / "plugins"), **(env or {})}
    log_path = tmp / "api-server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--port", str(port),
                             "--host", "127.0.0.1", "--workers", "1"],
                            env=full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(base + "/api/v2/monitor/health", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("api-server did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(1)
        yield base
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
        log.close()


def token(base: str, user: str, password: str) -> str:
    body = json.dumps({"username": user, "password": password}).encode()
    return json.load(urllib.request.urlopen(urllib.request.Request(
        base + "/auth/token", data=body, headers={"Content-Type": "application/json"})))[
        "access_token"]


CHROMIUM = "/usr/bin/chromium"


@contextmanager
def logged_in_page(base: str, path: str, user: str, password: str,
                   viewport: dict | None = None):
    """Headless Debian Chromium sent to ``path``, through Airflow's own login page, as ``user``."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport=viewport or {"width": 1280, "height": 720})
            page.goto(base + path)
            page.wait_for_url("**/login**", timeout=30_000)
            page.locator("input[name=username], input#username").first.fill(user)
            page.locator("input[type=password]").first.fill(password)
            page.locator("button[type=submit]").first.click()
            page.wait_for_url(f"**{path}**", timeout=30_000)
            yield page
        finally:
            browser.close()
