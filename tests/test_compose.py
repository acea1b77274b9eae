"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the services of
Airflow's official compose file, the image pinned to the locked Airflow, every variable,
connection and setting the DAGs read, include/ mounted where the package looks for it."""
from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
DOCKERFILE = (REPO / "Dockerfile").read_text()
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-worker", "airflow-triggerer", "airflow-init")
COMMON_ENV = COMPOSE["x-airflow-common"]["environment"]

# Read by the code but deliberately not set by the compose file, with the reason.
NOT_SET = {
    "ARREARS_DEFAULT_DB": "only used when there is no arrears_db connection",
    "AIRFLOW_CONN_ARREARS_SMS": "no SMS gateway in the compose stack: SMS go to <outbox>/<D>/sms.jsonl",
    "AIRFLOW_CONN_ARREARS_WECHAT": "no WeChat gateway in the stack: <outbox>/<D>/wechat.jsonl",
    "AIRFLOW_CONN_ARREARS_PUSH": "no push gateway in the stack: <outbox>/<D>/push.jsonl",
    "AIRFLOW_CONN_ARREARS_VOICE": "no voice gateway in the stack: <outbox>/<D>/voice.jsonl",
    # Switches operators flip in the UI (Admin > Variables): an AIRFLOW_VAR_* would shadow them.
    "AIRFLOW_VAR_ARREARS_DISCONNECTION_KILL_SWITCH": "flipped in the UI, off by default",
    "AIRFLOW_VAR_ARREARS_DISCONNECTION_DRY_RUN": "flipped in the UI, off by default",
    "AIRFLOW_VAR_ARREARS_DISCONNECTION_APPROVAL_HOURS": "tuned in the UI, 4 hours by default",
    # Set only where the billing system's files are not UTF-8: a declared encoding is trusted as
    # it is, while an undeclared one gets the mojibake check.
    "AIRFLOW_VAR_ARREARS_ENCODING": "undeclared (UTF-8, checked) unless the deployment says otherwise",
}


def locked(package: str) -> str:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return next(p["version"] for p in lock["package"] if p["name"] == package)


def interpolate(value: str) -> str:
    """docker compose's ${VAR:-default} / ${VAR:?error} / ${VAR}, with nothing set in .env."""
    value = re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", value)
    value = re.sub(r"\$\{(\w+):\?[^}]*\}", "set-in-dotenv", value)
    return re.sub(r"\$\{(\w+)\}", "", value).replace("$$", "$")


def names_read_by_the_code() -> set[str]:
    """Environment names behind every variable, connection and setting the DAGs read."""
    names = set()
    for path in [*(REPO / "dags").glob("*.py"), *(REPO / "plugins" / "arrears").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        names |= {f"AIRFLOW_VAR_{v.upper()}" for v in re.findall(r'get_variable\(\s*"(\w+)"', text)}
        names |= {f"AIRFLOW_VAR_{v.upper()}" for v in re.findall(r'_VARIABLE = "(\w+)"', text)}
        names |= {f"AIRFLOW_CONN_{c.upper()}" for c in re.findall(r'get_connection\(\s*"(\w+)"', text)}
        names |= {f"AIRFLOW_CONN_{c.upper()}" for c in re.findall(r'_CONN_ID = "(\w+)"', text)}
        names |= set(re.findall(r'os\.environ(?:\.get)?[\[(]\s*"((?:ARREARS|AIRFLOW_VAR|AIRFLOW_CONN)_\w+)"', text))
    # Each channel folder declares its connection (arrears.channels.registry), not a get_connection.
    from arrears.channels.registry import registry
    names |= {f"AIRFLOW_CONN_{c.connection_id.upper()}" for c in registry().values() if c.connection_id}
    return {n for n in names if not n.startswith("ARREARS_TEST")}


def test_every_service_of_the_official_shape_is_there():
    services = COMPOSE["services"]
    assert set(AIRFLOW_SERVICES) | {"postgres", "redis", "mailpit"} <= set(services)
    commands = {name: services[name].get("command") for name in AIRFLOW_SERVICES[:-1]}
    assert commands == {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                        "airflow-dag-processor": "dag-processor", "airflow-worker": "celery worker",
                        "airflow-triggerer": "triggerer"}
    assert "8080:8080" in services["airflow-apiserver"]["ports"]
    for name in AIRFLOW_SERVICES:
        assert services[name]["image"] == COMPOSE["x-airflow-common"]["image"]
        if name != "airflow-init":
            assert services[name]["depends_on"]["airflow-init"]["condition"] == \
                "service_completed_successfully"
    for name in ("postgres", "redis", "mailpit", *AIRFLOW_SERVICES[:-1]):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"


def test_the_image_is_the_locked_airflow_with_the_lock_file():
    version = locked("apache-airflow")
    assert re.search(rf"^FROM apache/airflow:{re.escape(version)}-python3\.11$", DOCKERFILE, re.M)
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert "3.11" in requires
    assert COMPOSE["x-airflow-common"]["image"].endswith(f":{version}}}")
    assert COMPOSE["x-airflow-common"]["build"]["context"] == "."
    assert "uv.lock" in DOCKERFILE and "uv export" in DOCKERFILE and "--frozen" in DOCKERFILE
    assert 'apache-airflow==${AIRFLOW_VERSION}' in DOCKERFILE  # pip may not move the image's Airflow
    # Third-party images pinned to a version, never `latest`.
    for name in ("postgres", "redis", "mailpit"):
        image = COMPOSE["services"][name]["image"]
        assert ":" in image and not image.endswith(":latest"), image


def test_celery_on_redis_and_postgres_with_one_shared_jwt_secret():
    assert COMMON_ENV["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert COMMON_ENV["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert "@redis:6379" in COMMON_ENV["AIRFLOW__CELERY__BROKER_URL"]
    assert "@postgres/airflow" in interpolate(COMMON_ENV["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert interpolate(COMMON_ENV["AIRFLOW__CELERY__RESULT_BACKEND"]).startswith("db+postgresql://")
    assert COMMON_ENV["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == \
        "http://airflow-apiserver:8080/execution/"
    assert COMMON_ENV["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET:?")
    for name in AIRFLOW_SERVICES:  # no service overrides the shared secret
        env = COMPOSE["services"][name]["environment"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == COMMON_ENV["AIRFLOW__API_AUTH__JWT_SECRET"]


def test_every_setting_the_dags_read_is_set():
    needed = names_read_by_the_code()
    assert {"AIRFLOW_VAR_ARREARS_LANDING", "AIRFLOW_CONN_ARREARS_DB",
            "AIRFLOW_CONN_ARREARS_SMTP"} <= needed  # the scan finds what it must
    missing = sorted(needed - set(COMMON_ENV) - set(NOT_SET))
    assert not missing, f"docker-compose.yml does not set {missing}"


def test_every_channel_connection_left_unset_is_shown_commented_with_its_file_default():
    """An operator reading docker-compose.yml sees each channel's connection and what happens
    without it; the commented examples parse as the tasks read them."""
    from arrears.channels.registry import registry
    from arrears.delivery.transports import gateway_url
    from arrears.settings import get_connection
    text = (REPO / "docker-compose.yml").read_text()
    for channel in registry().values():
        name = f"AIRFLOW_CONN_{channel.connection_id.upper()}"
        if not channel.connection_id or name in COMMON_ENV:
            continue
        assert name in NOT_SET, f"{name} is neither set nor listed as deliberately unset"
        line = re.search(rf"^\s*# {name}: '(.+)'$", text, re.M)
        assert line, f"docker-compose.yml shows no commented {name}"
        assert f"{channel.name}.jsonl" in text   # the file it writes without the connection
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(name, line.group(1))
            assert gateway_url(get_connection(channel.connection_id)).startswith("https://")


def test_the_connections_parse_as_the_tasks_read_them(monkeypatch):
    from arrears.settings import database_url, get_connection
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", interpolate(COMMON_ENV["AIRFLOW_CONN_ARREARS_DB"]))
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_SMTP", interpolate(COMMON_ENV["AIRFLOW_CONN_ARREARS_SMTP"]))
    assert database_url(get_connection("arrears_db")) == \
        "postgresql+psycopg://airflow:airflow@postgres:5432/arrears"
    smtp = get_connection("arrears_smtp")
    assert (smtp.conn_type, smtp.host, smtp.port) == ("smtp", "mailpit", 1025)
    assert json.loads(interpolate(COMMON_ENV["AIRFLOW_CONN_ARREARS_SMTP"]))["extra"]["from_email"]


def test_include_is_mounted_where_the_package_finds_it():
    volumes = COMPOSE["x-airflow-common"]["volumes"]
    targets = {interpolate(v).split(":")[1]: interpolate(v).split(":")[0] for v in volumes}
    for folder in ("dags", "plugins", "include", "logs", "config"):
        assert targets[f"/opt/airflow/{folder}"].endswith(f"/{folder}")
    # arrears.paths: REPO_ROOT is two levels above plugins/arrears, include/ beside plugins/.
    assert COMMON_ENV["ARREARS_INCLUDE"] == "/opt/airflow/include"
    landing = COMMON_ENV["AIRFLOW_VAR_ARREARS_LANDING"]
    assert any(landing.startswith(target) for target in targets)


@pytest.mark.parametrize("pool", ["arrears_db", "arrears_smtp"])
def test_init_creates_the_pools_the_tasks_use(pool):
    init = "\n".join(COMPOSE["services"]["airflow-init"]["command"])
    assert f"airflow pools set {pool} " in init
    assert "_AIRFLOW_DB_MIGRATE" in COMPOSE["services"]["airflow-init"]["environment"]


def test_the_cycle_tasks_run_in_pools_that_init_creates(dagbag):
    init = "\n".join(COMPOSE["services"]["airflow-init"]["command"])
    created = set(re.findall(r"airflow pools set (\w+) ", init))
    dag = dagbag.get_dag("arrears_collection_cycle")
    used = {t.pool for t in dag.tasks}
    assert used <= created | {"default_pool"}, used - created
    assert "arrears_db" in used


def test_env_example_names_every_variable_the_compose_file_interpolates():
    text = (REPO / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"\$\{(\w+)(?::[-?][^}]*)?\}", text)) - {"HOSTNAME"}
    example = {line.split("=", 1)[0] for line in (REPO / ".env.example").read_text().splitlines()
               if "=" in line and not line.startswith("#")}
    missing = sorted(interpolated - example - {"AIRFLOW_PROJ_DIR"})
    assert not missing, f".env.example does not mention {missing}"


def test_the_init_script_is_valid_bash_and_python():
    import ast
    import subprocess
    script = COMPOSE["services"]["airflow-init"]["command"][1]
    done = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    python = script.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    ast.parse(python)
    assert "_AIRFLOW_WWW_USER_CREATE" not in COMPOSE["services"]["airflow-init"]["environment"]


def test_a_worker_notices_within_a_second_that_a_task_process_ended(tmp_path, monkeypatch):
    """A task's supervisor sleeps up to [workers] min_heartbeat_interval when its task process's
    sockets have closed a moment before the process could be reaped; the default 5 s turned
    short tasks into 5 s tasks (README "Through Airflow"). The worker gets 1 s, and so do the
    e2e services that run the compose configuration (and make bench-airflow)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("e2e_services", REPO / "tests/e2e/e2e_services.py")
    services = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, services)  # its dataclasses look themselves up there
    spec.loader.exec_module(services)
    e2e = services.environment(tmp_path, tmp_path / "landing", tmp_path / "outbox", "meta", "data", 1, 8080)
    worker = COMPOSE["services"]["airflow-worker"]["environment"]
    assert worker["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] == "1"
    assert e2e["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] == "1"
