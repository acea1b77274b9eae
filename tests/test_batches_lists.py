"""call_list.csv and field_visits.csv: who is on them, the hints agents get, nobody under a hold
that forbids contact, identical bytes on a rerun."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import text

import batches_scenario as scenario
from batches_scenario import D


@pytest.fixture
def decided(engine, tmp_path):
    scenario.build(engine, tmp_path)
    return engine


def write(engine, tmp_path, name="out"):
    from arrears.batches.agent_lists import write_agent_lists
    from arrears.outbox_files import day_folder
    folder = day_folder(tmp_path / name, D)
    return write_agent_lists(engine, folder, D), tmp_path / name / D.isoformat()


def rows(path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_call_list_has_the_formal_notice_accounts_with_script_hints(decided, tmp_path):
    result, folder = write(decided, tmp_path)
    calls = rows(folder / "call_list.csv")
    assert result.calls == 1 and [c["account_id"] for c in calls] == ["A1"]
    a1 = calls[0]
    assert (a1["holder_name"], a1["mobile"], a1["stage"], a1["dpd"], a1["outstanding"],
            a1["late_fee"], a1["oldest_due_date"]) == ("王伟", "+8613900000001", "formal_notice",
                                                        "20", "150.00", "3.00", "2026-10-27")
    assert "Late fee so far CNY 3.00 on CNY 150.00" in a1["script_hints"]
    assert "Offer payment" in a1["script_hints"]


def test_field_visits_have_the_escalation_accounts_with_what_staff_must_know(decided, tmp_path):
    result, folder = write(decided, tmp_path)
    visits = {v["account_id"]: v for v in rows(folder / "field_visits.csv")}
    assert result.visits == 3 and sorted(visits) == ["A2", "A3", "A7"]   # A6 is disputed
    assert visits["A7"]["service_address"] == "杭州市西湖区文三路7号"
    assert visits["A7"]["visit_hints"].startswith("Medical device at the address")
    assert "Lawyer letter LL-20261116-A2 issued today" in visits["A2"]["visit_hints"]
    assert "Reported to the credit bureau today" in visits["A2"]["visit_hints"]
    a3 = visits["A3"]["visit_hints"]
    assert "Customer's language is English" in a3 and "refused SMS" in a3


def test_nobody_under_a_contact_hold_is_listed_whatever_the_decision_says(decided, tmp_path):
    # Belt and braces: even a decision row carrying call_list with a deceased hold is left out.
    with decided.begin() as conn:
        conn.execute(text("UPDATE decisions SET holds = 'deceased' WHERE cycle_date = :d AND "
                          "account_id IN ('A1', 'A2')"), {"d": D})
    result, folder = write(decided, tmp_path)
    assert result.calls == 0 and rows(folder / "call_list.csv") == []
    assert sorted(v["account_id"] for v in rows(folder / "field_visits.csv")) == ["A3", "A7"]


def test_rerun_is_byte_identical(decided, tmp_path):
    _, one = write(decided, tmp_path, "one")
    _, two = write(decided, tmp_path, "two")
    write(decided, tmp_path, "one")
    for name in ("call_list.csv", "field_visits.csv"):
        assert (one / name).read_bytes() == (two / name).read_bytes()
