"""The cycle DAG's disconnection wiring (`dag.test`): on the earliest date the run writes the
proposals and updates the asset that schedules `arrears_disconnection_release`; a replay of the
same date asks for no approval."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

from sqlalchemy import select, text

from arrears.cycle.decide import decide_cycle, stage_bills
from arrears.cycle.run import CycleRun
from arrears.db import connect
from arrears.disconnection import disconnection_step
from arrears.disconnection.tasks import PROPOSALS_ASSET_URI
from arrears.ingest import ingest_delivery
from cycle_steps import rows as rows_of
from factories import CALENDAR, POLICY, deliver, landing

SERVED, D = date(2026, 11, 16), date(2026, 11, 23)
ACCOUNTS = [["K1", "赵敏", "residential", "", "k1@example.com", "13900000011", "zh-CN", "", ""]]
BILLS = [["BK1", "K1", "2026-08", "600.00", "2026-09-01"]]


def _asset_events(session) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    rows = session.execute(select(AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                           .where(AssetModel.uri == PROPOSALS_ASSET_URI)).all()
    return [r[0] for r in rows]


def test_cycle_dag_proposes_and_announces_the_batch_for_approval(tmp_path, monkeypatch, dagbag):
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    db = tmp_path / "arrears.db"
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_CONTACT_WINDOW", "00:00-24:00")
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    # The notice was served by the cycle of 16 Nov (run here directly, without the DAG).
    engine = connect(f"sqlite:///{db}")
    ingest_delivery(engine, landing(tmp_path / "landing" / SERVED.isoformat(), ACCOUNTS, BILLS), SERVED)
    stage_bills(engine, SERVED)
    first = CycleRun(SERVED, run_id="scheduled__2026-11-16", run_type="scheduled")
    decide_cycle(engine, first, POLICY, CALENDAR)
    disconnection_step(engine, first, POLICY, CALENDAR, tmp_path / "outbox")
    deliver(engine, tmp_path / "outbox", first)   # the notice reaches K1: served on 16 Nov
    assert rows_of(engine, "SELECT notice_id FROM disconnection_notices") == [("DN-20261116-K1",)]
    landing(tmp_path / "landing" / D.isoformat(), ACCOUNTS, BILLS)

    with create_session() as session:
        before = len(_asset_events(session))
    dag = dagbag.get_dag("arrears_collection_cycle")
    run = dag.test(logical_date=datetime(2026, 11, 23, 0, 30, tzinfo=timezone.utc))
    assert run.state == DagRunState.SUCCESS
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["disconnection"] == states["announce_proposals"] == TaskInstanceState.SUCCESS
    assert (tmp_path / "outbox" / D.isoformat() / "disconnection" / "proposed_orders.csv").read_text() == \
        "account_id,notice_id\nK1,DN-20261116-K1\n"
    with create_session() as session:
        events = _asset_events(session)[before:]
    assert len(events) == 1 and events[0]["cycle_date"] == "2026-11-23" and events[0]["proposed"] == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT run_id, task_id FROM disconnection_proposals")).all() == [
            (run.run_id, "disconnection")]
