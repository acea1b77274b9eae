"""Backfill semantics (CONTRACT §4) through the cycle's task functions, on both databases.

A run whose run_type is backfill is a replay: decisions as of its date in storage of its own
(replay_decisions, keyed by run id), outputs under <D>/replays/<run id>/ saying so, nothing
queued or sent; `allow_contact` in the conf is the only way to change that, and
it is audited. Catch-up after an outage: the first normal run after the missed days sends only
what is due now, because the contact-limit history ignores replay decisions.

Accounts (residential, one bill each), normal run on Mon 16 Nov 2026, outage 17-19, catch-up 20:
  R: 100.00 due 11-16 -> DPD 0 (current) on the 16th, enters reminder on the 17th (missed).
     Had the replayed 17th counted as a message, the 20th would be inside the 7-day repeat gap
     and R would get nothing; it must get its email and SMS on the 20th.
  M: 100.00 due 11-15 -> reminder on the 16th, messaged then (a real send). On the 20th it is
     still in reminder, 4 days after that message: nothing (real sends do count).
"""
from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from cycle_steps import mails, replay_folder, replay_summary, rows, run_cycle, sms, summary, use_database
from factories import landing

D = date(2026, 11, 16)
OUTAGE = [D + timedelta(days=n) for n in (1, 2, 3)]
CATCH_UP = D + timedelta(days=4)


def accounts():
    return [["R", "王伟", "residential", "", "r@example.com", "13900000001", "zh-CN", "", ""],
            ["M", "李娜", "residential", "", "m@example.com", "13900000002", "zh-CN", "", ""]]


BILLS = [["BR", "R", "2026-10", "100.00", "2026-11-16"],
         ["BM", "M", "2026-10", "100.00", "2026-11-15"]]


@pytest.fixture
def cycle(tmp_path, monkeypatch, engine, db_url):
    land, outbox = tmp_path / "landing", tmp_path / "outbox"
    for day in [D, *OUTAGE, CATCH_UP]:
        landing(land / day.isoformat(), accounts(), BILLS, [], [])
    use_database(monkeypatch, db_url, land, outbox)
    return engine, outbox


def decision(engine, day, account):
    return rows(engine, "SELECT actions, replay FROM decisions WHERE cycle_date = :d AND"
                        " account_id = :a", d=day, a=account)[0]


def replayed(engine, day, account):
    """(run id, actions) of every replay's decision of the account on ``day``."""
    return rows(engine, "SELECT run_id, actions FROM replay_decisions WHERE cycle_date = :d AND"
                        " account_id = :a ORDER BY run_id", d=day, a=account)



def test_backfill_is_a_replay_and_catch_up_sends_only_what_is_due_now(cycle):
    engine, outbox = cycle
    run_cycle(D)
    assert mails(outbox, D) and len(sms(outbox, D)) == 1          # M's reminder, really sent
    sent_before = (mails(outbox), sms(outbox))

    for day in OUTAGE:                                             # the engineer backfills
        result = run_cycle(day, run_type="backfill")
        assert result["decide"]["replay"] is True
        assert result["queue"]["queued"] == 0 and result["dispatch"]["sent"] == 0
        assert replay_summary(outbox, day, "backfill")["replay"] is True
        assert replay_summary(outbox, day, "backfill")["differences"] is None  # never ran for real
        assert not (outbox / day.isoformat() / "mail").exists()
        # Its files are in its own folder; the day's real folder has none of them.
        assert not (outbox / day.isoformat() / "cycle_summary.json").exists()
        assert not (outbox / day.isoformat() / "decisions.csv").exists()
    assert (mails(outbox), sms(outbox)) == sent_before             # nothing sent by the replays
    # The replay decided R's reminder as of the 17th, without sending it, in its own storage.
    assert replayed(engine, OUTAGE[0], "R") == [(f"backfill__{OUTAGE[0]}T00:30:00+00:00", "email;sms")]
    assert rows(engine, "SELECT COUNT(*) FROM decisions WHERE cycle_date >= :a AND cycle_date <= :b",
                a=OUTAGE[0], b=OUTAGE[-1]) == [(0,)]
    assert rows(engine, "SELECT COUNT(*) FROM outbox WHERE cycle_date >= :a AND cycle_date <= :b",
                a=OUTAGE[0], b=OUTAGE[-1]) == [(0,)]
    assert rows(engine, "SELECT cycle_date, run_type, replay, allow_contact FROM cycle_runs"
                        " WHERE run_type = 'backfill' ORDER BY cycle_date") == [
        (day if engine.dialect.name == "postgresql" else day.isoformat(), "backfill", 1, 0)
        for day in OUTAGE]

    run_cycle(CATCH_UP)                                            # the first normal run after
    assert decision(engine, CATCH_UP, "R")[0] == "email;sms"       # replay did not count
    assert decision(engine, CATCH_UP, "M")[0] == ""                # the real send did
    assert summary(outbox, CATCH_UP)["replay"] is False
    new_mail = sorted(set(mails(outbox)) - set(sent_before[0]))
    assert new_mail == mails(outbox, CATCH_UP) and len(new_mail) == 1 and "_R_" in new_mail[0]
    assert [m["to"] for m in sms(outbox, CATCH_UP)] == ["+8613900000001"]   # R's, and only R's


def test_allow_contact_lets_a_backfill_send_and_is_audited(cycle):
    engine, outbox = cycle
    day = OUTAGE[0]
    result = run_cycle(day, run_type="backfill", conf={"allow_contact": True})
    assert result["decide"]["replay"] is False
    assert summary(outbox, day)["replay"] is False
    assert len(mails(outbox, day)) == 2 and len(sms(outbox, day)) == 2   # R and M, both channels
    (run_id, allow, replay), = rows(engine, "SELECT run_id, allow_contact, replay FROM cycle_runs")
    assert (allow, replay) == (1, 0)
    audited = rows(engine, "SELECT entry_key, kind, run_id FROM audit_entries"
                           " WHERE entry_key LIKE '%allow_contact'")
    assert audited == [(f"cycle/{day.isoformat()}/{run_id}/allow_contact", "cycle", run_id)]
    # A retried decide records the run again without a second audit entry.
    run_cycle(day, run_type="backfill", conf={"allow_contact": True}, deliver=False)
    assert len(rows(engine, "SELECT 1 FROM audit_entries WHERE entry_key LIKE '%allow_contact'")) == 1


def test_a_cleared_scheduled_run_that_comes_back_as_backfill_is_a_replay(cycle):
    """Airflow keeps the scheduled__ run id of a reprocessed run but makes its type backfill:
    the run type decides, never the id."""
    engine, outbox = cycle
    day = OUTAGE[0]
    run_id = f"scheduled__{day.isoformat()}T00:30:00+00:00"
    result = run_cycle(day, run_type="backfill", run_id=run_id)
    assert result["decide"]["replay"] is True and mails(outbox, day) == []
    own = replay_folder(outbox, day, "backfill", run_id=run_id) / "cycle_summary.json"
    assert json.loads(own.read_text())["run_id"] == run_id          # its folder is its run id's
    assert rows(engine, "SELECT run_id, run_type, replay FROM cycle_runs") == [(run_id, "backfill", 1)]


def test_a_dry_run_contacts_nobody_and_leaves_no_contact_history(cycle):
    engine, outbox = cycle
    run_cycle(D, conf={"dry_run": True})
    assert mails(outbox) == [] and sms(outbox) == []
    assert replay_summary(outbox, D)["replay"] is True
    assert not (outbox / D.isoformat() / "cycle_summary.json").exists()
    assert replayed(engine, D, "M") == [(f"scheduled__{D}T00:30:00+00:00", "email;sms")]
    assert rows(engine, "SELECT COUNT(*) FROM decisions") == [(0,)]
    run_cycle(D + timedelta(days=1))          # M's reminder was never sent: it goes out now
    assert decision(engine, D + timedelta(days=1), "M")[0] == "email;sms"


def test_run_conf_is_validated_by_the_dags_params(dagbag):
    import copy
    from airflow.sdk.definitions.param import ParamValidationError
    dag = dagbag.get_dag("arrears_collection_cycle")
    for conf in ({"allow_contact": "yes"}, {"dry_run": 1}, {"portfolio": 7}):
        params = copy.deepcopy(dag.params)
        with pytest.raises(ParamValidationError, match=next(iter(conf))):
            params.update(conf)
            params.validate()
    ok = copy.deepcopy(dag.params)
    ok.update({"allow_contact": True, "dry_run": True, "portfolio": "default"})
    assert ok.validate()["dry_run"] is True


def test_a_backfill_of_a_date_that_ran_leaves_its_record_and_files_as_they_were(cycle):
    """CONTRACT §4: the replay's decisions, summary and report are its own; D's stay."""
    from test_replays import REAL_TABLES, tree
    engine, outbox = cycle
    run_cycle(D)
    files = tree(outbox / D.isoformat())

    def real():
        return {t: sorted(rows(engine, f"SELECT * FROM {t}")) for t in REAL_TABLES}
    before = real()
    run_cycle(D, run_type="backfill")
    assert tree(outbox / D.isoformat()) == files and real() == before
    own = replay_summary(outbox, D, "backfill")
    assert own["replay"] is True and own["messages"]["sent"] == 0
    # The same policy on the same record: the same decisions, so no difference at all.
    assert own["differences"]["accounts_changed"] == 0
    assert replayed(engine, D, "M") == [(f"backfill__{D}T00:30:00+00:00", "email;sms")]
