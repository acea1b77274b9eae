"""One outbox (arrears.outbox_files): every file of a cycle goes through Airflow's ObjectStoragePath,
so an object-store outbox receives exactly the files a local folder does; a replay's files go to
``<outbox>/<D>/replays/<run_id>/``; writes are whole; appends durable and torn-line safe.

The object store here is fsspec's in-memory file system attached to Airflow the way a provider
attaches ``s3://`` or ``gs://`` (``airflow.sdk.io.attach``): the code path is the non-local one
(no rename, no append, one PUT per object). The collection database is SQLite only: what is
under test is where the files go, which no database changes.
"""
from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from factories import BILL_HEADER, write_csv
# The channels test's accounts (every channel, post, a lawyer letter), with the wechat_first
# portfolio and no gateway connection: every channel writes its file default.
from test_channels import ACCOUNTS, BILLS, HEADER

D = date(2026, 11, 16)
# Compared by name, not by bytes: an .eml's Date is its queue time; the audit anchor holds the
# chain's head hash, over entries naming the run id (another run, another hash).
CLOCK_DEPENDENT = (".eml", "cycle_report.html", "cycle_summary.json")
RUN_DEPENDENT = "/audit_checkpoints/"


@pytest.fixture
def memory_store():
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem
    attach("memory", fs=MemoryFileSystem())   # what the amazon provider does for s3://
    return f"memory://outbox-{uuid.uuid4().hex[:8]}"


def relative_files(root) -> dict[str, bytes]:
    from arrears.outbox_files import as_storage_path, files_under
    root = as_storage_path(root)
    base = root.path.rstrip("/") + "/"
    return {f.path.removeprefix(base): f.read_bytes() for f in files_under(root)}


def run_cycle(dagbag, tmp_path: Path, monkeypatch, outbox: str, name: str) -> None:
    from airflow.utils.state import DagRunState
    land = tmp_path / name / "landing"
    write_csv(land / D.isoformat() / "accounts.csv", HEADER, ACCOUNTS)
    write_csv(land / D.isoformat() / "open_items.csv", BILL_HEADER, BILLS)
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_LANDING", str(land))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", outbox)
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_CONTACT_WINDOW", "00:00-24:00")
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", json.dumps(
        {"conn_type": "sqlite", "host": str(tmp_path / name / "arrears.db")}))
    for channel in ("SMTP", "SMS", "WECHAT", "PUSH", "VOICE"):
        monkeypatch.delenv(f"AIRFLOW_CONN_ARREARS_{channel}", raising=False)
    run = dagbag.get_dag("arrears_collection_cycle").test(
        logical_date=datetime(D.year, D.month, D.day, 0, 30, tzinfo=timezone.utc),
        run_conf={"portfolio": "wechat_first"})
    assert run.state == DagRunState.SUCCESS, f"cycle on {outbox} ended {run.state}"


def test_an_object_store_outbox_receives_every_file_of_a_cycle(dagbag, tmp_path, monkeypatch,
                                                                dispatch_on_cycle_date,
                                                                memory_store):
    local = tmp_path / "local-outbox"
    run_cycle(dagbag, tmp_path, monkeypatch, str(local), "local")
    run_cycle(dagbag, tmp_path, monkeypatch, memory_store, "object-store")
    on_disk, in_store = relative_files(local), relative_files(memory_store)

    day = D.isoformat()
    # The cycle wrote every kind of file (else the comparison below would prove little).
    for expected in ("decisions.csv", "cycle_summary.json", "cycle_report.html",
                     "disconnection/notices.csv", "disconnection/proposed_orders.csv",
                     "disconnection/cancelled_notices.csv", "sms.jsonl", "wechat.jsonl",
                     "push.jsonl", "voice.jsonl", "post/manifest.csv", "post/W5.pdf",
                     "lawyer_letters/manifest.csv", "lawyer_letters/W5.pdf",
                     "credit_report/manifest.csv", "call_list.csv", "field_visits.csv"):
        assert f"{day}/{expected}" in on_disk, f"the local cycle wrote no {expected}"
    assert any(n.startswith(f"{day}/mail/") and n.endswith(".eml") for n in on_disk)
    assert any(n.startswith(f"{day}/audit_checkpoints/") for n in on_disk)
    assert not [n for n in on_disk if "/." in n], "a staging or temporary file was left behind"

    assert sorted(in_store) == sorted(on_disk)
    for name, data in on_disk.items():
        if not name.endswith(CLOCK_DEPENDENT) and RUN_DEPENDENT not in name:
            assert in_store[name] == data, f"{name} differs between the two outboxes"
    # A file transport's lines are each whole on the store too (one PUT per line).
    lines = in_store[f"{day}/wechat.jsonl"].decode().splitlines()
    assert {json.loads(line)["account_id"] for line in lines} == {"W1", "W3", "W5"}  # not W4: opted out


def test_a_replay_writes_under_replays_and_its_run_id():
    from arrears.cycle.run import CycleRun
    from arrears.outbox_files import run_folder
    real = CycleRun(D, run_id="scheduled__2026-11-16T00:30:00+00:00", run_type="scheduled")
    backfill = CycleRun(D, run_id="backfill__2026-11-16T00:30:00+00:00", run_type="backfill")
    dry = CycleRun(D, run_id="manual__x", run_type="manual", dry_run=True)
    contact = CycleRun(D, run_id="backfill__y", run_type="backfill", allow_contact=True)
    assert str(run_folder("/srv/outbox", real)) == "file:///srv/outbox/2026-11-16"
    assert str(run_folder("/srv/outbox", backfill)) == \
        "file:///srv/outbox/2026-11-16/replays/backfill__2026-11-16T00:30:00+00:00"
    assert str(run_folder("memory://b/o", dry)) == "memory://b/o/2026-11-16/replays/manual__x"
    assert str(run_folder("/srv/outbox", contact)) == "file:///srv/outbox/2026-11-16"  # not a replay


@pytest.mark.parametrize("where", ["local", "store"])
def test_a_write_is_whole_and_a_failed_one_leaves_the_old_file(where, tmp_path, memory_store,
                                                              monkeypatch):
    from arrears.outbox_files import as_storage_path, files_under, write_file
    root = as_storage_path(tmp_path / "o" if where == "local" else memory_store)
    target = root / "2026-11-16" / "decisions.csv"
    write_file(target, b"old\n")
    assert target.read_bytes() == b"old\n"

    if where == "local":
        import os
        real_fsync = os.fsync

        def die(fd):
            raise OSError("disk full")
        monkeypatch.setattr(os, "fsync", die)
        with pytest.raises(OSError):
            write_file(target, b"new\n")
        monkeypatch.setattr(os, "fsync", real_fsync)
    else:
        from airflow.sdk import ObjectStoragePath

        def die(self, data):
            raise OSError("connection reset")
        monkeypatch.setattr(ObjectStoragePath, "write_bytes", die)
        with pytest.raises(OSError):
            write_file(target, b"new\n")
        monkeypatch.undo()
    assert target.read_bytes() == b"old\n"
    assert [f.name for f in files_under(root)] == ["decisions.csv"]   # no temporary left


@pytest.mark.parametrize("where", ["local", "store"])
def test_appends_are_whole_lines_and_a_torn_last_line_is_ended(where, tmp_path, memory_store):
    from arrears.outbox_files import appending, as_storage_path, write_file
    root = as_storage_path(tmp_path / "o" if where == "local" else memory_store)
    path = root / "2026-11-16" / "sms.jsonl"
    write_file(path, b'{"a": 1}\n{"b": ')            # a crash tore the last line
    with appending(path) as add:
        add(b'{"c": 3}\n')
        add(b'{"d": 4}\n')
    assert path.read_bytes().splitlines() == [b'{"a": 1}', b'{"b": ', b'{"c": 3}', b'{"d": 4}']


def test_an_outbox_url_no_provider_serves_is_refused_naming_the_variable(monkeypatch):
    from arrears.settings import SettingsError, outbox_root
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", "nosuchstore://bucket/outbox")
    with pytest.raises(SettingsError, match=r"arrears_outbox = 'nosuchstore://bucket/outbox'.*"
                                            r"apache-airflow-providers-amazon"):
        outbox_root()
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", "/srv/arrears/outbox")
    assert str(outbox_root()) == "file:///srv/arrears/outbox"


@pytest.mark.parametrize("run_id, folder", [
    ("manual__2026-11-16T00:30:00+00:00", "manual__2026-11-16T00:30:00+00:00"),
    ("..", "%2E%2E"),                                   # never the day's own folder
    (".", "%2E"),
    ("a/../../2026-11-16", "a%2F%2E%2E%2F%2E%2E%2F2026-11-16"),
    ("/etc", "%2Fetc"),
    ("", "%00"),
    ("回放 1", "%E5%9B%9E%E6%94%BE%201"),
])
def test_a_hostile_run_id_stays_one_folder_under_replays(run_id, folder):
    """Anyone allowed to trigger a run chooses its id (the REST API's dag_run_id)."""
    from arrears.cycle.run import CycleRun
    from arrears.outbox_files import run_folder
    dry = CycleRun(date(2026, 11, 16), run_id=run_id, run_type="manual", dry_run=True)
    path = run_folder("/srv/outbox", dry)
    assert str(path) == f"file:///srv/outbox/2026-11-16/replays/{folder}"
    assert path.parent.name == "replays" and path.parent.parent.name == "2026-11-16"
