"""The audit task over the three hand-worked cycle dates of test_cycle_dag (real DAG, dag.test):
every side effect has its entry, re-runs add nothing, the chain verifies, the timeline of A6
reads in order with its rules, the cycle report is there, and no personal data is in the logs."""
from __future__ import annotations

import csv

from sqlalchemy import inspect, text

from arrears.audit import trail
from arrears.audit.timeline import account_timeline
from arrears.db import connect
from test_cycle_dag import D1, D2, D3, accounts, cycle_env, run_cycle  # noqa: F401 - fixture

PII = [value for row in accounts("A1", "A2", "A3", "A4", "A5", "A6")
       for value in (row[1], row[3], row[4], row[5]) if value]


def _keys(conn) -> set[str]:
    return {r[0] for r in conn.execute(text("SELECT entry_key FROM audit_entries"))}


def test_multi_day_run_is_fully_audited(cycle_env, dagbag, caplog, capfd):
    outbox = cycle_env
    engine = connect(f"sqlite:///{outbox.parent / 'arrears.db'}")
    for day in (D1, D2, D3):
        run_cycle(dagbag, day)

    with engine.connect() as conn:
        assert trail.verify(conn).ok
        keys = _keys(conn)
        entries = trail.entries(conn)
        tables = set(inspect(conn).get_table_names())
        decisions = conn.execute(text("SELECT cycle_date, account_id FROM decisions")).all()
        assert len(decisions) == 17
        decided = {(str(e.cycle_date), e.account_id) for e in entries if e.kind == "decision"}
        assert {(str(d)[:10], a) for d, a in decisions} <= decided
        if "outbox" in tables:
            msgs = conn.execute(text("SELECT idem_key, status FROM outbox"
                                     " WHERE status NOT IN ('queued', 'sending')")).all()
            assert msgs, "the three days send messages"
            assert {f"message/{k}/{s}" for k, s in msgs} <= keys
        if "disconnection_log" in tables:
            events = conn.execute(text("SELECT event_id FROM disconnection_log")).all()
            assert {f"disconnection_event/{e}" for (e,) in events} <= keys
            notices = conn.execute(text("SELECT notice_id FROM disconnection_notices")).all()
            assert notices and all(any(k.startswith(f"notice/{n}/") for k in keys)
                                   for (n,) in notices)
            proposals = conn.execute(text("SELECT cycle_date, notice_id FROM "
                                          "disconnection_proposals")).all()
            assert {f"proposal/{str(d)[:10]}/{n}" for d, n in proposals} <= keys
    manifests = sorted(outbox.glob("*/*/manifest.csv"))
    assert manifests, "A2's lawyer letter and the bureau file give the sweep manifests to read"
    for manifest in manifests:
        rows = list(csv.DictReader(manifest.open(encoding="utf-8")))
        recorded = [e for e in entries if e.kind == "batch_file"
                    and e.payload["batch"] == manifest.parent.name
                    and str(e.cycle_date) == manifest.parent.parent.name]
        assert len(recorded) == len(rows) + 1, manifest  # each row and the manifest itself
        for row in rows:
            if row.get("sha256"):
                assert any(e.payload["sha256"] == row["sha256"] and e.account_id == row["account_id"]
                           for e in recorded)

    # A re-run of the last day changes nothing, so it records nothing but the run itself.
    run_cycle(dagbag, D3)
    with engine.connect() as conn:
        new = _keys(conn) - keys
        assert len(new) == 1 and new.pop().startswith("cycle/2026-11-18/"), new
        assert trail.verify(conn).ok

    # A6: disputed on D1 and D2, the dispute closes, escalation on D3.
    with engine.connect() as conn:
        steps = account_timeline(conn, "A6")
    decisions_a6 = [s for s in steps if s.kind == "decision"]
    assert [s.cycle_date for s in decisions_a6] == ["2026-11-16", "2026-11-17", "2026-11-18"]
    assert "escalation_stopped:disputed" in decisions_a6[0].rule
    assert "credit_prenotice:escalation_entry" in decisions_a6[2].rule
    assert all(s.run_id and s.task_id == "decide" and s.try_number == 1 for s in decisions_a6)
    notices = [s for s in steps if s.kind == "notice"]
    # Served when the message carrying it was delivered: by the dispatch task (CONTRACT §2).
    assert notices and notices[0].task_id == "dispatch_messages" and notices[0].try_number == 1
    assert [s.cycle_date for s in steps] == sorted(s.cycle_date for s in steps)
    assert any(s.kind == "message" and s.cycle_date == "2026-11-18" for s in steps)

    # The report of D2: the quarantined row, deltas against D1, the ageing plot.
    report = (outbox / D2.isoformat() / "cycle_report.html").read_text()
    assert 'id="quarantine"' in report and "open_items.csv" in report
    assert "against 2026-11-16" in report and "data:image/png;base64," in report

    # No personal data of the extract in anything the tasks logged.
    logged = caplog.text + "".join(capfd.readouterr())
    assert "audit summary" in logged
    leaked = [v for v in PII if v in logged]
    assert not leaked, f"personal data in task logs: {leaked}"
