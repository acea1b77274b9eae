"""Every DAG parses, and every task is retried, owned and tagged."""
from pathlib import Path

import pytest

DAG_FILES = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "dags").glob("*.py"))


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "arrears_collection_cycle" in dagbag.dag_ids
    assert len(dagbag.dag_ids) >= 1 and DAG_FILES


def test_dags_have_tags_and_an_owner_and_tasks_retry(airflow_home, monkeypatch):
    # Parse as production does: the test suite otherwise turns retries off.
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.standard.operators.hitl import HITLOperator
    monkeypatch.delenv("ARREARS_TASK_RETRIES", raising=False)
    production = DagBag(dag_folder=str(Path(__file__).resolve().parents[1] / "dags"))
    assert production.import_errors == {}
    for dag_id, dag in production.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", f"{dag_id}.{t.task_id} has no owner"
            if isinstance(t, HITLOperator):  # approvals, incl. subclasses such as SupervisorApproval
                continue  # a human answers once; a retry would ask again
            assert t.retries >= 1, f"{dag_id}.{t.task_id} has no retries"


def test_the_cycle_retries_with_backoff_in_production(monkeypatch):
    """Tests run the DAG with retries off; the production parse has 3 with exponential backoff."""
    import importlib.util
    monkeypatch.delenv("ARREARS_TASK_RETRIES", raising=False)
    path = Path(__file__).resolve().parents[1] / "dags" / "arrears_collection_cycle.py"
    spec = importlib.util.spec_from_file_location("cycle_dag_prod", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.default_args["retries"] == 3
    assert module.default_args["retry_exponential_backoff"]


@pytest.mark.parametrize("dag_id", ["arrears_collection_cycle"])
def test_cycle_schedule_is_in_the_utility_time_zone(dagbag, dag_id):
    dag = dagbag.get_dag(dag_id)
    assert "Asia/Shanghai" in str(dag.timetable.summary) or "Asia/Shanghai" in repr(dag.timetable.__dict__)
    assert dag.max_active_runs == 1
