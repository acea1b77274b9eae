"""The real DAG over three cycle dates (`dag.test`), checked against results worked out by hand.

Accounts (SQLite collection DB, mail to files), cycle dates Mon 16 - Wed 18 Nov 2026:
  A1 reminder: 200.00 due 11-13 -> DPD 3, fee 0.60 -> the 1.00 minimum; messaged on D1 only
     (the next message waits 7 days).
  A2 escalation: 1000.00 due 09-01 -> DPD 76, fee 76.00; on D1 pre-notice, lawyer letter,
     disconnection notice, field visit; later days only the field visit.
  A3 non-residential, bill of 2025-12 (prior-year rate 0.3%): 5000.00 due 10-20 -> DPD 27,
     fee 405.00, formal notice by email only (opted out of SMS); pays in full on 11-16, so on D2
     it is current with nothing outstanding, and it is gone from the D3 extract.
  A4 deceased: no action ever.   A5 0.50 outstanding: below threshold.
  A6 disputed since 11-10; the dispute closes 11-17 (delivered on D3): escalates on D3.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from factories import landing

D1, D2, D3 = date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18)


def accounts(*ids):
    rows = {
        "A1": ["A1", "王伟", "residential", "北京市朝阳区人民路1号", "a1@example.com", "13900000001", "zh-CN", "", ""],
        "A2": ["A2", "李娜", "residential", "上海市浦东新区建设路2号", "a2@example.com", "13900000002", "zh-CN", "", ""],
        "A3": ["A3", "Acme Trading", "non_residential", "广州市天河区中山路3号", "a3@example.com", "13900000003", "en", "", "sms"],
        "A4": ["A4", "张强", "residential", "", "a4@example.com", "13900000004", "", "", ""],
        "A5": ["A5", "刘洋", "residential", "", "a5@example.com", "13900000005", "", "", ""],
        "A6": ["A6", "陈静", "residential", "", "a6@example.com", "13900000006", "", "", ""],
    }
    return [rows[i] for i in ids]


BILLS = {
    "A1": ["B1", "A1", "2026-10", "200.00", "2026-11-13"],
    "A2": ["B2", "A2", "2026-08", "1000.00", "2026-09-01"],
    "A3": ["B3", "A3", "2025-12", "5000.00", "2026-10-20"],
    "A4": ["B4", "A4", "2026-08", "300.00", "2026-09-15"],
    "A5": ["B5", "A5", "2026-09", "0.50", "2026-10-01"],
    "A6": ["B6", "A6", "2026-08", "400.00", "2026-09-10"],
}

EXPECTED = {
    D1: """account_id,stage,dpd,outstanding,late_fee,actions,holds,segment
A1,reminder,3,200.00,1.00,email;sms,,new
A2,escalation,76,1000.00,76.00,email;sms;credit_prenotice;lawyer_letter;disconnection_notice;field_visit,,new
A3,formal_notice,27,5000.00,405.00,email;call_list,opt_out_sms,new
A4,escalation,62,300.00,18.60,,deceased,new
A5,escalation,46,0.50,1.00,,below_threshold,new
A6,escalation,67,400.00,26.80,,disputed,disputing
""",
    D2: """account_id,stage,dpd,outstanding,late_fee,actions,holds,segment
A1,reminder,4,200.00,1.00,,,new
A2,escalation,77,1000.00,77.00,field_visit,,new
A3,current,0,0.00,0.00,,opt_out_sms;below_threshold,new
A4,escalation,63,300.00,18.90,,deceased,new
A5,escalation,47,0.50,1.00,,below_threshold,new
A6,escalation,68,400.00,27.20,,disputed,disputing
""",
    D3: """account_id,stage,dpd,outstanding,late_fee,actions,holds,segment
A1,reminder,5,200.00,1.00,,,new
A2,escalation,78,1000.00,78.00,field_visit,,new
A4,escalation,64,300.00,19.20,,deceased,new
A5,escalation,48,0.50,1.00,,below_threshold,new
A6,escalation,69,400.00,27.60,email;sms;credit_prenotice;lawyer_letter;disconnection_notice;field_visit,,disputing
""",
}


@pytest.fixture
def cycle_env(tmp_path, monkeypatch, airflow_home, dispatch_on_cycle_date):
    land, outbox = tmp_path / "landing", tmp_path / "outbox"
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_LANDING", str(land))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(outbox))
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_CONTACT_WINDOW", "00:00-24:00")
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB",
                       json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "arrears.db")}))
    events = [["E6", "A6", "dispute_opened", "2026-11-10", "", "", "bill disputed"],
              ["E4", "A4", "deceased", "2026-10-01", "", "", ""]]
    landing(land / D1.isoformat(), accounts("A1", "A2", "A3", "A4", "A5", "A6"),
            [BILLS[a] for a in ("A1", "A2", "A3", "A4", "A5", "A6")], [], events)
    landing(land / D2.isoformat(), accounts("A1", "A2", "A3", "A4", "A5", "A6"),
            [BILLS[a] for a in ("A1", "A2", "A3", "A4", "A5", "A6")] + [["BX", "A1", "2026-10", "5.00", "2026-11-31"]],
            [["P3", "A3", "B3", "5000.00", "2026-11-16T15:20:00+08:00"]], [])
    landing(land / D3.isoformat(), accounts("A1", "A2", "A4", "A5", "A6"),
            [BILLS[a] for a in ("A1", "A2", "A4", "A5", "A6")], [],
            [["E7", "A6", "dispute_closed", "2026-11-17", "", "", "resolved"]])
    return outbox


def run_cycle(dagbag, day: date):
    from airflow.utils.state import DagRunState
    dag = dagbag.get_dag("arrears_collection_cycle")
    # 00:30 UTC is 08:30 in Asia/Shanghai: the schedule's own time of day.
    run = dag.test(logical_date=datetime(day.year, day.month, day.day, 0, 30, tzinfo=timezone.utc))
    assert run.state == DagRunState.SUCCESS, f"cycle {day} ended {run.state}"


def test_three_cycle_dates_end_to_end(cycle_env, dagbag):
    outbox = cycle_env
    for day in (D1, D2, D3):
        run_cycle(dagbag, day)
        assert (outbox / day.isoformat() / "decisions.csv").read_text() == EXPECTED[day]

    s1 = json.loads((outbox / D1.isoformat() / "cycle_summary.json").read_text())
    assert s1["cycle_date"] == "2026-11-16" and s1["accounts"] == 6 and s1["quarantined"] == 0
    assert s1["by_stage"] == {"current": 0, "reminder": 1, "formal_notice": 1, "escalation": 4}
    assert {k: v for k, v in s1["by_action"].items() if v} == {
        "email": 3, "sms": 2, "call_list": 1, "credit_prenotice": 1, "lawyer_letter": 1,
        "disconnection_notice": 1, "field_visit": 1}
    assert {k: v for k, v in s1["by_hold"].items() if v} == {
        "disputed": 1, "deceased": 1, "opt_out_sms": 1, "below_threshold": 1}
    assert s1["by_segment"] == {"disputing": 1, "hardship": 0, "wilful": 0, "forgetful": 0, "new": 5}
    # every decided message went out (the file transports accept at once; the window is open)
    assert s1["messages"]["sent"] == 5 and not {k: v for k, v in s1["messages"].items()
                                                if v and k != "sent"}

    s2 = json.loads((outbox / D2.isoformat() / "cycle_summary.json").read_text())
    assert s2["quarantined"] == 1 and s2["by_stage"]["current"] == 1
    s3 = json.loads((outbox / D3.isoformat() / "cycle_summary.json").read_text())
    assert s3["accounts"] == 5 and s3["by_action"]["credit_prenotice"] == 1

    # Re-running a past date, after later dates ran, gives the same files byte for byte.
    before = (outbox / D1.isoformat() / "decisions.csv").read_bytes()
    summary_before = (outbox / D1.isoformat() / "cycle_summary.json").read_bytes()
    run_cycle(dagbag, D1)
    assert (outbox / D1.isoformat() / "decisions.csv").read_bytes() == before
    assert json.loads((outbox / D1.isoformat() / "cycle_summary.json").read_bytes())["by_action"] == \
        json.loads(summary_before)["by_action"]
