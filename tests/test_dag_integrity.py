"""Every DAG parses, and every task is retried, owned and tagged from a fixed vocabulary."""
from pathlib import Path

import pytest

DAG_FILES = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "dags").glob("*.py"))
# The tags ops filter the DAG list by: a new DAG picks from these (or adds one here, on purpose).
TAG_VOCABULARY = {"arrears", "collections", "delivery", "disconnection", "approval", "policy",
                  "audit", "retention"}


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "arrears_collection_cycle" in dagbag.dag_ids
    # every file in dags/ defines at least one DAG (a file that silently defines none is a bug)
    assert DAG_FILES and {Path(d.fileloc).name for d in dagbag.dags.values()} == set(DAG_FILES)


def test_dags_have_tags_and_an_owner_and_tasks_retry(airflow_home, monkeypatch):
    # Parse as production does: the test suite otherwise turns retries off.
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.standard.operators.hitl import HITLOperator
    monkeypatch.delenv("ARREARS_TASK_RETRIES", raising=False)
    production = DagBag(dag_folder=str(Path(__file__).resolve().parents[1] / "dags"))
    assert production.import_errors == {}
    for dag_id, dag in production.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert "arrears" in dag.tags, f"{dag_id} lacks the project tag"
        assert set(dag.tags) <= TAG_VOCABULARY, \
            f"{dag_id} has tags outside the vocabulary: {set(dag.tags) - TAG_VOCABULARY}"
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", f"{dag_id}.{t.task_id} has no owner"
            if isinstance(t, HITLOperator):  # approvals, incl. subclasses such as SupervisorApproval
                continue  # a human answers once; a retry would ask again
            assert t.retries >= 1, f"{dag_id}.{t.task_id} has no retries"


def test_every_task_of_every_dag_alerts_ops_on_failure(dagbag):
    """Not only the cycle: a failed release or outbox sweep mails the ops address too (a DAG
    added later must wire the same default_args)."""
    from arrears.ops.alerts import OpsFailureNotifier
    assert len(dagbag.dags) >= 3
    for dag_id, dag in dagbag.dags.items():
        for t in dag.tasks:
            callbacks = t.on_failure_callback if isinstance(t.on_failure_callback, list) \
                else [t.on_failure_callback]
            assert any(isinstance(c, OpsFailureNotifier) for c in callbacks), \
                f"{dag_id}.{t.task_id} alerts nobody when it fails"


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
    assert dag.timetable.serialize()["timezone"] == "Asia/Shanghai"
    assert dag.max_active_runs == 1
