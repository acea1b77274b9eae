"""Real Airflow services for the end-to-end suite, configured the way docker-compose.yml runs them:
CeleryExecutor with Redis as broker, PostgreSQL for the metadata (and result backend) and for the
collection database, api-server, scheduler, dag-processor, triggerer and a Celery worker.

Everything is fresh per session (databases ``arrears_e2e_<pid>`` and ``arrears_e2e_<pid>_data``,
a Redis database, a temporary AIRFLOW_HOME, free ports) and torn down hard: every process group is
killed with SIGKILL and the databases are dropped. Without PostgreSQL or Redis the suite fails.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("ARREARS_E2E_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS = os.environ.get("ARREARS_E2E_REDIS", "redis://127.0.0.1:6379")
DAG_ID = "arrears_collection_cycle"
# The same pools airflow-init creates in docker-compose.yml.
POOLS = {"arrears_db": (4, "collection database writers"), "arrears_smtp": (1, "SMTP sessions")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Services:
    home: Path
    landing: Path
    outbox: Path
    meta_db: str
    data_db: str
    redis_db: int
    api_port: int
    env: dict = field(default_factory=dict)
    procs: dict = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def data_url(self) -> str:
        return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.data_db}"

    # -- commands -------------------------------------------------------------------------
    def airflow(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
        log("airflow " + " ".join(args))
        done = subprocess.run([str(VENV_BIN / "airflow"), *args], env=self.env, cwd=self.home,
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode:
            raise AssertionError(f"airflow {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        return done

    def start(self, name: str, *args: str) -> None:
        out = (self.home / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen([str(VENV_BIN / "airflow"), *args], env=self.env,
                                            cwd=self.home, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        log(f"started {name} (pid {self.procs[name].pid})")

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise AssertionError(f"services died: {dead}\n{self.service_logs()}")

    # -- REST -----------------------------------------------------------------------------
    def rest(self, method: str, path: str, body: dict | None = None, ok=(200, 201, 204)):
        req = urllib.request.Request(self.api + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        if status not in ok:
            raise AssertionError(f"{method} {path} -> {status}: {raw[:2000]!r}")
        return status, (json.loads(raw) if raw else None)

    def wait(self, what: str, probe, timeout: float, every: float = 2.0):
        """Poll ``probe`` until it returns something truthy; fail with the services' logs."""
        deadline = time.monotonic() + timeout
        last_note = 0.0
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                value = probe()
            except (urllib.error.URLError, ConnectionError, OSError):
                value = None
            if value:
                return value
            if time.monotonic() - last_note > 20:
                log(f"waiting for {what}")
                last_note = time.monotonic()
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n"
                             f"{self.run_report()}\n{self.service_logs()}")

    def wait_run(self, run_id: str, timeout: float = 240) -> dict:
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.request.quote(run_id, safe='')}"

        def finished():
            _, run = self.rest("GET", path)
            return run if run["state"] in ("success", "failed") else None
        run = self.wait(f"run {run_id}", finished, timeout)
        assert run["state"] == "success", f"run {run_id} {run['state']}\n{self.run_report()}"
        return run

    # -- diagnostics ----------------------------------------------------------------------
    def run_report(self) -> str:
        """Every run and task state, and the log of each failed task."""
        lines = []
        try:
            _, runs = self.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100")
            for run in runs["dag_runs"]:
                lines.append(f"run {run['dag_run_id']} {run['run_type']} {run['state']}")
                rid = urllib.request.quote(run["dag_run_id"], safe="")
                _, tis = self.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{rid}/taskInstances")
                for ti in tis["task_instances"]:
                    lines.append(f"  {ti['task_id']}: {ti['state']} try {ti['try_number']}")
        except Exception as exc:  # noqa: BLE001 - diagnostics must not hide the real failure
            lines.append(f"(no run report: {exc})")
        for path in sorted((self.home / "logs").rglob("*.log")):
            text = path.read_text(errors="replace")
            if "ERROR" in text or "Traceback" in text:
                lines.append(f"--- {path.relative_to(self.home)}\n{text[-3000:]}")
        return "\n".join(lines)

    def service_logs(self, tail: int = 3000) -> str:
        return "\n".join(f"===== {name}.log =====\n"
                         + (self.home / f"{name}.log").read_text(errors="replace")[-tail:]
                         for name in self.procs)

    # -- lifecycle ------------------------------------------------------------------------
    def stop(self) -> None:
        import psutil
        for name, proc in self.procs.items():
            # Task runners may leave the group: collect the whole tree first, then SIGKILL.
            try:
                tree = psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                tree = []
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            for child in tree:
                try:
                    child.kill()
                except psutil.NoSuchProcess:
                    pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"{name} did not die")


def _admin_sql(*statements: str) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE); raises when PG is down."""
    from sqlalchemy import create_engine, text
    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def _drop_databases(*names: str) -> None:
    for name in names:
        _admin_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
                   f"DROP DATABASE IF EXISTS {name}")


REDIS_CLAIM = "arrears:e2e:owner"


def _redis_db() -> int:
    """A Redis database no other e2e session uses: claimed with SET NX (expires), then emptied
    of whatever a killed session left. Raises when Redis is not running: fail, never skip."""
    import redis
    for db in range(1, 16):
        client = redis.Redis.from_url(f"{REDIS}/{db}", socket_timeout=5)
        if client.set(REDIS_CLAIM, os.getpid(), nx=True, ex=3600):
            for key in client.scan_iter():
                if key != REDIS_CLAIM.encode():
                    client.delete(key)
            return db
    raise AssertionError("every Redis database 1-15 is claimed by another e2e session "
                         f"(key {REDIS_CLAIM}); wait for them or delete stale claims")


def environment(home: Path, landing: Path, outbox: Path, meta_db: str, data_db: str,
                redis_db: int, api_port: int) -> dict:
    """The configuration docker-compose.yml gives every Airflow container, on local ports."""
    meta = f"{PG_USER}@{PG_HOST}:{PG_PORT}/{meta_db}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ARREARS"))}
    env.update({
        "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{meta}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{meta}",
        "AIRFLOW__CELERY__BROKER_URL": f"{REDIS}/{redis_db}",
        "AIRFLOW__CORE__FERNET_KEY": "",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
        # How soon a worker notices that a task process has exited (docker-compose.yml says why).
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        # A queue of this session's own: no other worker on this Redis can take its tasks.
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"arrears_e2e_{os.getpid()}",
        "ARREARS_INCLUDE": str(REPO / "include"),
        # One retry: the first task after a start can reach the API server before it is up.
        "ARREARS_TASK_RETRIES": "1",
        "AIRFLOW_VAR_ARREARS_LANDING": str(landing),
        "AIRFLOW_VAR_ARREARS_OUTBOX": str(outbox),
        "AIRFLOW_VAR_ARREARS_TIMEZONE": "Asia/Shanghai",
        "AIRFLOW_VAR_ARREARS_CONTACT_WINDOW": "00:00-24:00",
        "AIRFLOW_VAR_ARREARS_OPS_EMAIL": "ops@utility.example",
        "AIRFLOW_VAR_ARREARS_CYCLE_FINISH_BY": "12:00",   # the deadline alert, as in compose
        "ARREARS_LETTER_WORKERS": "1",                   # two cores: no letter process pool
        "AIRFLOW_CONN_ARREARS_DB": f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{data_db}",
    })
    return env


def start_services(root: Path) -> Services:
    pid = os.getpid()
    meta_db, data_db = f"arrears_e2e_{pid}", f"arrears_e2e_{pid}_data"
    redis_db = _redis_db()
    _drop_databases(meta_db, data_db)
    _admin_sql(f"CREATE DATABASE {meta_db}", f"CREATE DATABASE {data_db}")
    home = root / "airflow"
    home.mkdir(parents=True)
    svc = Services(home=home, landing=root / "landing", outbox=root / "outbox", meta_db=meta_db,
                   data_db=data_db, redis_db=redis_db, api_port=free_port())
    svc.env = environment(home, svc.landing, svc.outbox, meta_db, data_db, svc.redis_db,
                          svc.api_port)
    try:
        svc.airflow("db", "migrate", timeout=300)
        for pool, (slots, description) in POOLS.items():
            svc.airflow("pools", "set", pool, str(slots), description)
        svc.start("api-server", "api-server", "--port", str(svc.api_port))
        svc.start("scheduler", "scheduler")
        svc.start("dag-processor", "dag-processor")
        svc.start("triggerer", "triggerer")
        svc.start("worker", "celery", "worker", "--concurrency", "4",
                  "--queues", svc.env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"])
        svc.wait("the api-server", lambda: svc.rest("GET", "/api/v2/monitor/health")[1], 120)
    except BaseException:
        teardown(svc)  # a failed start must not leave services behind
        raise
    return svc


def teardown(svc: Services) -> None:
    svc.stop()
    _drop_databases(svc.meta_db, svc.data_db)
    import redis
    redis.Redis.from_url(f"{REDIS}/{svc.redis_db}", socket_timeout=5).flushdb()  # and the claim
