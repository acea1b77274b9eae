"""Task glue reads the settings once per task, but never serves another environment's."""

from arrears import orchestration


def test_settings_are_reused_within_a_task_and_follow_the_environment(monkeypatch, tmp_path):
    calls = []
    real_load = orchestration.Settings.load

    def counting_load():
        calls.append(1)
        return real_load()

    monkeypatch.setattr(orchestration.Settings, "load", staticmethod(counting_load))
    monkeypatch.setattr(orchestration, "_settings_cache", None)
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(tmp_path / "one"))
    assert orchestration.settings().outbox.path == str(tmp_path / "one")
    assert orchestration.settings().outbox.path == str(tmp_path / "one")
    assert len(calls) == 1
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(tmp_path / "two"))
    assert orchestration.settings().outbox.path == str(tmp_path / "two")
    assert len(calls) == 2
    monkeypatch.setattr(orchestration, "_SETTINGS_TTL_SECONDS", -1.0)
    monkeypatch.setattr(orchestration, "_settings_cache", None)
    orchestration.settings()
    orchestration.settings()
    assert len(calls) == 4   # expired at once: read again
