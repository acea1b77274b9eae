"""Notices, cancellations, proposals and the release of work orders against the collection
database (SQLite and PostgreSQL): exactly once, re-checked, capped, and stoppable."""
from __future__ import annotations

import dataclasses
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from arrears.cycle.decide import decide_cycle, stage_bills
from arrears.db.values import as_date
from arrears.cycle.run import CycleRun
from arrears.disconnection import disconnection_step, record_answer, release_batch
from arrears.disconnection.release import Safety, open_batch
from arrears.ingest import ingest_delivery
from factories import CALENDAR, POLICY, deliver, landing

D1 = date(2026, 11, 16)      # Monday: notices served, earliest disconnection Monday 23 Nov
D2 = date(2026, 11, 23)      # the earliest date: orders proposed
D3 = date(2026, 11, 24)      # the release day (a later delivery may have arrived)


def acct(aid: str, protections: str = "", opt_out: str = "") -> list:
    return [aid, f"户主{aid}", "residential", "", f"{aid.lower()}@example.com",
            f"1390000{int(aid[1:]):04d}", "zh-CN", protections, opt_out]


def item(aid: str, amount: str, due: str = "2026-09-01") -> list:
    return [f"B-{aid}-{due}", aid, due[:7], amount, due]


def run_cycle(engine, tmp_path: Path, day: date, accounts: list, bills: list, payments=None,
              events=None, run_type: str = "manual", policy=POLICY, stage: bool = True,
              step: bool = True, delivered: bool = True):
    folder = landing(tmp_path / "landing" / day.isoformat(), accounts, bills, payments, events)
    ingest_delivery(engine, folder, day)
    if not stage:  # delivered but its cycle has not staged it yet
        return None
    run = CycleRun(day, run_id=f"{run_type}__{day}", run_type=run_type, task_id="disconnection")
    stage_bills(engine, day)
    decide_cycle(engine, run, policy, CALENDAR)
    if not step:  # decided, but the disconnection step of that cycle has not run yet
        return None
    out = disconnection_step(engine, run, policy, CALENDAR, tmp_path / "outbox")
    if delivered and not run.replay:  # then D's messages go out: a notice delivered is served
        deliver(engine, tmp_path / "outbox", run, policy)
        out.served = len(rows(engine, "SELECT notice_id FROM disconnection_notices WHERE served_on = :d", d=day))
    return out


def rows(engine, query: str, **params) -> list:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(query), params)]


def read(tmp_path: Path, day: date, name: str) -> str:
    return (tmp_path / "outbox" / day.isoformat() / "disconnection" / name).read_text()


RELEASE_RUN = CycleRun(D3, run_id="asset_triggered__release1", run_type="asset_triggered",
                       task_id="release")


def release(engine, tmp_path, batch=D2, on=D3, run=RELEASE_RUN, policy=POLICY, safety=Safety(),
            approver="supervisor.zhang"):
    return release_batch(engine, batch_date=batch, release_date=on, approved_by=approver,
                         responded_at="2026-11-24T09:00:00+00:00", run=run, policy=policy,
                         calendar=CALENDAR, safety=safety, outbox=tmp_path / "outbox")


def to_proposals(engine, tmp_path, ids=("E1", "E2", "E3"), policy=POLICY):
    """Notices served on D1, orders proposed on D2 for every account."""
    accounts = [acct(a) for a in ids]
    run_cycle(engine, tmp_path, D1, accounts, [item(a, "500.00") for a in ids], policy=policy)
    return run_cycle(engine, tmp_path, D2, accounts, [item(a, "500.00") for a in ids], policy=policy)


# --- notices ----------------------------------------------------------------------------------------

def test_notice_served_once_with_its_business_day_and_files(engine, tmp_path):
    accounts = [acct("E1"), acct("E2", protections="medical_device"), acct("E3")]
    bills = [item("E1", "500.00"), item("E2", "500.00"), item("E3", "99.99")]
    first = run_cycle(engine, tmp_path, D1, accounts, bills)
    assert first.served == 1
    notices = read(tmp_path, D1, "notices.csv")
    assert notices == ("account_id,notice_id,served_on,earliest_disconnection\n"
                       "E1,DN-20261116-E1,2026-11-16,2026-11-23\n")
    again = run_cycle(engine, tmp_path, D1, accounts, bills)  # a rerun of the same date
    assert again.served == 1 and read(tmp_path, D1, "notices.csv") == notices
    assert rows(engine, "SELECT notice_id FROM disconnection_notices") == [("DN-20261116-E1",)]
    assert rows(engine, "SELECT event, run_id, task_id, try_number FROM disconnection_log") == [
        ("notice_served", "manual__2026-11-16", "dispatch_messages", 1)]


def test_a_replay_serves_nothing_and_proposes_nothing_to_approve(engine, tmp_path):
    out = run_cycle(engine, tmp_path, D1, [acct("E1")], [item("E1", "500.00")], run_type="backfill")
    assert out.replay and out.served == 0
    assert rows(engine, "SELECT * FROM disconnection_notices") == []
    replayed = tmp_path / "outbox" / D1.isoformat() / "replays" / f"backfill__{D1}" / "disconnection"
    assert (replayed / "notices.csv").read_text() == \
        "account_id,notice_id,served_on,earliest_disconnection\n"
    assert not (tmp_path / "outbox" / D1.isoformat() / "disconnection").exists()  # the real folder


def test_orders_proposed_from_the_earliest_date_on(engine, tmp_path):
    accounts, bills = [acct("E1")], [item("E1", "500.00")]
    run_cycle(engine, tmp_path, D1, accounts, bills)
    early = run_cycle(engine, tmp_path, date(2026, 11, 20), accounts, bills)
    assert early.proposed == 0
    assert read(tmp_path, date(2026, 11, 20), "proposed_orders.csv") == "account_id,notice_id\n"
    on_time = run_cycle(engine, tmp_path, D2, accounts, bills)
    assert on_time.proposed == 1 and on_time.proposed_fen == 50_000
    assert read(tmp_path, D2, "proposed_orders.csv") == "account_id,notice_id\nE1,DN-20261116-E1\n"
    assert rows(engine, "SELECT account_id, run_id FROM disconnection_proposals") == [("E1", "manual__2026-11-23")]


# --- cancellation -------------------------------------------------------------------------------------

def test_payment_cancels_the_notice_and_the_customer_is_told_in_the_next_message(engine, tmp_path):
    accounts = [acct("E1"), acct("E2")]
    run_cycle(engine, tmp_path, D1, accounts, [item("E1", "500.00"), item("E2", "500.00")])
    # 17 Nov: E1 pays 450.00 (50.00 left, below the 100.00 minimum); E2 pays in full (gone).
    out = run_cycle(engine, tmp_path, date(2026, 11, 17), [acct("E1")], [item("E1", "500.00")],
                    payments=[["P1", "E1", "", "450.00", "2026-11-16T10:00:00+08:00"]])
    assert out.cancelled == 2
    assert [(a, as_date(c), r) for a, c, r in rows(
        engine, "SELECT account_id, closed_on, closed_reason FROM disconnection_notices"
                " ORDER BY account_id")] == [
        ("E1", date(2026, 11, 17), "notice_lapsed:below_minimum"),
        ("E2", date(2026, 11, 17), "notice_lapsed:paid_in_full")]
    assert read(tmp_path, date(2026, 11, 17), "cancelled_notices.csv").splitlines()[1:] == [
        "E1,DN-20261116-E1,2026-11-16,2026-11-17,notice_lapsed:below_minimum",
        "E2,DN-20261116-E2,2026-11-16,2026-11-17,notice_lapsed:paid_in_full"]
    # 18 Nov: the 7-day repeat rule holds the next message back; 23 Nov it goes and tells.
    run_cycle(engine, tmp_path, date(2026, 11, 18), [acct("E1")], [item("E1", "50.00")])
    told = rows(engine, "SELECT message_kinds, actions FROM decisions WHERE account_id = 'E1'"
                        " AND cycle_date = :d", d=date(2026, 11, 18))
    assert "disconnection_cancelled" not in told[0][0]
    run_cycle(engine, tmp_path, D2, [acct("E1")], [item("E1", "50.00")])
    told = rows(engine, "SELECT message_kinds, actions FROM decisions WHERE account_id = 'E1'"
                        " AND cycle_date = :d", d=D2)
    assert told[0][0] == "disconnection_cancelled" and told[0][1].startswith("email;sms")
    assert [(n, as_date(d)) for n, d in rows(
        engine, "SELECT notice_id, cycle_date FROM disconnection_log"
                " WHERE event = 'cancellation_told'")] == [("DN-20261116-E1", D2)]
    # Told once: the day after carries nothing about it.
    run_cycle(engine, tmp_path, D3, [acct("E1")], [item("E1", "50.00")])
    assert "disconnection_cancelled" not in rows(
        engine, "SELECT message_kinds FROM decisions WHERE cycle_date = :d", d=D3)[0][0]


# --- release -------------------------------------------------------------------------------------------

def test_approved_batch_is_released_once_with_the_approver(engine, tmp_path):
    to_proposals(engine, tmp_path)
    out = release(engine, tmp_path)
    assert out.status == "released" and out.released == ["WO-20261116-E1", "WO-20261116-E2", "WO-20261116-E3"]
    expected = ("account_id,notice_id,order_id,released_on,approved_by\n"
                "E1,DN-20261116-E1,WO-20261116-E1,2026-11-24,supervisor.zhang\n"
                "E2,DN-20261116-E2,WO-20261116-E2,2026-11-24,supervisor.zhang\n"
                "E3,DN-20261116-E3,WO-20261116-E3,2026-11-24,supervisor.zhang\n")
    assert read(tmp_path, D2, "work_orders.csv") == expected
    # A retry of the task, and a second approval of the same batch, release nothing more.
    assert release(engine, tmp_path).released == []
    second = dataclasses.replace(RELEASE_RUN, run_id="manual__again")
    assert release(engine, tmp_path, run=second, approver="someone.else").released == []
    assert read(tmp_path, D2, "work_orders.csv") == expected
    assert rows(engine, "SELECT COUNT(*) FROM disconnection_orders") == [(3,)]
    assert rows(engine, "SELECT approval_id, outcome, responded_by, proposals, amount_fen, task_id"
                        " FROM disconnection_approvals ORDER BY approval_id")[0] == (
        "2026-11-23/asset_triggered__release1", "approved", "supervisor.zhang", 3, 150_000, "release")
    assert open_batch(engine, D2) == []


def test_released_order_closes_the_notice_and_no_second_notice_follows(engine, tmp_path):
    to_proposals(engine, tmp_path, ids=("E1",))
    release(engine, tmp_path)
    assert rows(engine, "SELECT closed_reason FROM disconnection_notices") == [("order_released",)]
    out = run_cycle(engine, tmp_path, date(2026, 11, 25), [acct("E1")], [item("E1", "500.00")])
    assert out.served == 0 and out.proposed == 0
    reasons = rows(engine, "SELECT reasons FROM decisions WHERE cycle_date = :d", d=date(2026, 11, 25))[0][0]
    assert "disconnection:order_released_2026-11-24" in reasons


@pytest.mark.parametrize("cycle_cancelled_first", [False, True])
def test_payment_between_proposal_and_release_cancels_instead_of_releasing(engine, tmp_path,
                                                                          cycle_cancelled_first):
    to_proposals(engine, tmp_path, ids=("E1", "E2", "E3", "E4"))
    # 24 Nov delivery, staged: E2 paid down to 60.00, E3 paid in full (gone), E4 disputes.
    # The approval comes either before or after that cycle's own cancellation step.
    run_cycle(engine, tmp_path, D3, [acct("E1"), acct("E2"), acct("E4")],
              [item("E1", "500.00"), item("E2", "60.00"), item("E4", "500.00")],
              events=[["EV1", "E4", "dispute_opened", "2026-11-24", "", "", ""]],
              step=cycle_cancelled_first)
    out = release(engine, tmp_path)
    assert out.released == ["WO-20261116-E1"]
    assert out.withheld["DN-20261116-E4"].startswith("no_longer_eligible:escalation_stopped:disputed")
    if cycle_cancelled_first:
        assert out.withheld["DN-20261116-E2"] == "notice_closed:notice_lapsed:below_minimum"
        assert out.withheld["DN-20261116-E3"] == "notice_closed:notice_lapsed:paid_in_full"
        assert out.cancelled == {}
    else:
        assert out.withheld["DN-20261116-E2"].startswith("no_longer_eligible:disconnection:below_minimum")
        assert out.withheld["DN-20261116-E3"] == "not_in_extract_of_2026-11-24"
        assert out.cancelled == {"DN-20261116-E2": "notice_lapsed:below_minimum",
                                 "DN-20261116-E3": "notice_lapsed:paid_in_full"}
    closed = dict(rows(engine, "SELECT account_id, closed_reason FROM disconnection_notices"))
    assert closed == {"E1": "order_released", "E2": "notice_lapsed:below_minimum",
                      "E3": "notice_lapsed:paid_in_full", "E4": None}
    assert read(tmp_path, D2, "work_orders.csv").count("\n") == 2


def test_payment_delivered_but_not_yet_staged_withholds_the_order(engine, tmp_path):
    to_proposals(engine, tmp_path, ids=("E1", "E2"))
    run_cycle(engine, tmp_path, D3, [acct("E1"), acct("E2")], [item("E1", "500.00"), item("E2", "500.00")],
              payments=[["P9", "E2", "", "500.00", "2026-11-23T18:00:00+08:00"]], stage=False)
    out = release(engine, tmp_path)
    assert out.released == ["WO-20261116-E1"]
    assert out.withheld == {"DN-20261116-E2": "payment_received_2026-11-24_not_yet_staged"}


def test_protection_recorded_after_the_proposal_withholds_the_order(engine, tmp_path):
    to_proposals(engine, tmp_path, ids=("E1", "E2"))
    run_cycle(engine, tmp_path, D3, [acct("E1"), acct("E2", protections="medical_device")],
              [item("E1", "500.00"), item("E2", "500.00")])
    out = release(engine, tmp_path)
    assert out.released == ["WO-20261116-E1"]
    assert "protected_medical" in out.withheld["DN-20261116-E2"] and out.cancelled == {}


def test_daily_cap_limits_the_orders_released_per_day(engine, tmp_path):
    capped = dataclasses.replace(POLICY, disconnection_daily_cap=2)
    to_proposals(engine, tmp_path, ids=("E1", "E2", "E3"), policy=capped)
    out = release(engine, tmp_path, policy=capped)
    assert out.released == ["WO-20261116-E1", "WO-20261116-E2"]
    assert out.withheld == {"DN-20261116-E3": "daily_cap_2"}
    # Another approval the same day finds the cap used up; the next day the rest goes.
    again = release(engine, tmp_path, policy=capped, run=dataclasses.replace(RELEASE_RUN, run_id="r2"))
    assert again.released == [] and again.withheld == {"DN-20261116-E3": "daily_cap_2"}
    later = release(engine, tmp_path, policy=capped, on=date(2026, 11, 25),
                    run=dataclasses.replace(RELEASE_RUN, run_id="r3"))
    assert later.released == ["WO-20261116-E3"]


def test_kill_switch_stops_every_release(engine, tmp_path):
    to_proposals(engine, tmp_path, ids=("E1", "E2"))
    out = release(engine, tmp_path, safety=Safety(kill_switch=True))
    assert out.status == "kill_switch" and out.released == []
    assert rows(engine, "SELECT COUNT(*) FROM disconnection_orders") == [(0,)]
    assert not (tmp_path / "outbox" / D2.isoformat() / "disconnection" / "work_orders.csv").exists()
    assert rows(engine, "SELECT closed_on FROM disconnection_notices") == [(None,), (None,)]
    # Switched off again, clearing the task releases the approved batch.
    assert len(release(engine, tmp_path).released) == 2


def test_dry_run_previews_and_releases_nothing(engine, tmp_path):
    to_proposals(engine, tmp_path, ids=("E1",))
    out = release(engine, tmp_path, safety=Safety(dry_run=True))
    assert out.status == "dry_run" and out.released == ["WO-20261116-E1"]
    assert read(tmp_path, D2, "work_orders.dry_run.csv").endswith(
        "E1,DN-20261116-E1,WO-20261116-E1,2026-11-24,supervisor.zhang\n")
    assert rows(engine, "SELECT COUNT(*) FROM disconnection_orders") == [(0,)]
    assert rows(engine, "SELECT COUNT(*) FROM disconnection_approvals") == [(0,)]
    assert not (tmp_path / "outbox" / D2.isoformat() / "disconnection" / "work_orders.csv").exists()


def test_rejected_or_timed_out_batch_is_recorded_and_releases_nothing(engine, tmp_path):
    to_proposals(engine, tmp_path, ids=("E1", "E2"))
    record_answer(engine, D2, RELEASE_RUN, "rejected", "supervisor.li", "2026-11-24T09:00:00+00:00")
    record_answer(engine, D2, dataclasses.replace(RELEASE_RUN, run_id="r2"), "timed_out", "", "")
    assert rows(engine, "SELECT outcome, responded_by, proposals FROM disconnection_approvals"
                        " ORDER BY approval_id") == [("rejected", "supervisor.li", 2), ("timed_out", "", 2)]
    assert rows(engine, "SELECT COUNT(*) FROM disconnection_orders") == [(0,)]
    assert len(open_batch(engine, D2)) == 2


def test_no_order_without_a_named_approver(engine, tmp_path):
    to_proposals(engine, tmp_path, ids=("E1",))
    with pytest.raises(ValueError, match="named approver"):
        release(engine, tmp_path, approver="")


def test_kill_switch_variable_stops_the_release_task(tmp_path, monkeypatch):
    """The release task reads the Airflow variable at release time and ends skipped."""
    import json

    from airflow.sdk.exceptions import AirflowSkipException

    from arrears.db import connect
    from arrears.disconnection import tasks

    engine = connect(f"sqlite:///{tmp_path / 'k.db'}")
    to_proposals(engine, tmp_path, ids=("E1",))
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "k.db")}))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_DISCONNECTION_KILL_SWITCH", "true")

    class Ti:
        task_id, try_number = "release", 1

        def xcom_pull(self, task_ids, key):
            return {"chosen_options": ["Approve"], "responded_by_user": {"id": "7", "name": "supervisor.zhang"},
                    "responded_at": "2026-11-24T01:00:00+00:00", "timedout": False}

    class Run:
        run_id, run_type, run_after = "asset_triggered__k", "asset_triggered", None

    context = {"ti": Ti(), "dag_run": Run(), "params": {"cycle_date": D2.isoformat()},
               "logical_date": datetime(2026, 11, 24, 1, tzinfo=timezone.utc)}
    with pytest.raises(AirflowSkipException, match="kill switch"):
        tasks.release(context)
    assert rows(engine, "SELECT COUNT(*) FROM disconnection_orders") == [(0,)]
    assert rows(engine, "SELECT outcome, responded_by FROM disconnection_approvals") == [
        ("approved", "supervisor.zhang")]
