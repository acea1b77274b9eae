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


def _niceness_inside_batch_step(queue) -> None:
    """In a child process, so the test run itself keeps its priority."""
    import multiprocessing
    import os

    from arrears import orchestration

    @orchestration.batch_step
    def step():
        with multiprocessing.get_context("fork").Pool(1) as pool:  # what the letters' pool sees
            return os.nice(0), pool.apply(os.nice, (0,))

    before = os.nice(0)
    queue.put((before, step(), os.nice(0)))


def test_a_batch_step_and_its_child_processes_run_nicer_than_the_worker():
    import multiprocessing
    import os

    from arrears.orchestration import BATCH_NICENESS

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_niceness_inside_batch_step, args=(queue,))
    child.start()
    before, (inside, grandchild), after = queue.get(timeout=60)
    child.join(60)
    assert before == os.nice(0)
    assert inside == max(before, BATCH_NICENESS) and grandchild == inside
    # root (CAP_SYS_NICE) gets its niceness back; anyone else stays nicer, never less nice
    assert after == (before if os.geteuid() == 0 else inside)


def test_the_long_batch_steps_are_the_ones_run_nicer():
    from arrears.batches import tasks as batch_steps
    from arrears.delivery import tasks as delivery_steps

    nicer = {f.__name__ for f in (batch_steps.lawyer_letters, delivery_steps.queue,
                                  delivery_steps.dispatch_cycle, delivery_steps.sweep,
                                  batch_steps.credit_report, batch_steps.agent_lists)
             if getattr(f, "__wrapped__", None) is not None}
    assert nicer == {"lawyer_letters", "queue", "dispatch_cycle", "sweep"}
