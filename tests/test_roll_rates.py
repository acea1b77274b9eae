"""Roll rates (CONTRACT §5) over a hand-worked 3-day example, through the cycle's own steps, on
both databases: in cycle_summary.json (with deltas against the previous cycle) and the report.

Cycle dates Thu 5 - Sat 7 Nov 2026 (the first of the month: every pair counts month to date).
Residential accounts, 100.00 a bill; stage by DPD of the oldest open bill:
        D1 (11-05)          D2 (11-06)                     D3 (11-07)
  R1    reminder (due 11-03) reminder -> stayed             reminder -> stayed
  R2    reminder (due 10-29) formal   -> moved on           formal   -> stayed
  R3    reminder (due 11-01) current (no bill left) -> cured gone (current: not counted)
  F1    formal (due 10-06)   escalation (DPD 31) -> moved on escalation -> stayed
  F2    formal (due 10-20)   gone from the extract -> cured  -
  E1    escalation (09-01)   escalation -> stayed            escalation -> stayed
  E2    escalation (09-01 and 10-25); the old bill is paid: formal (DPD 12) -> rolled back;
        D3 formal -> stayed
  C1    current (due 11-10): never counted (roll rates start from a stage in arrears)
As of D2 (one pair): reminder 3 = 1 moved on, 1 stayed, 1 cured; formal 2 = 1 moved on,
1 cured; escalation 2 = 1 stayed, 1 rolled back.
As of D3 (two pairs): reminder 4 = 1/2/1/0; formal 4 = 1/2/1/0; escalation 4 = 0/3/0/1.
"""
from __future__ import annotations

from datetime import date

from cycle_steps import run_cycle, summary, use_database
from factories import landing

D1, D2, D3 = date(2026, 11, 5), date(2026, 11, 6), date(2026, 11, 7)
DUE = {"R1": "2026-11-03", "R2": "2026-10-29", "R3": "2026-11-01", "F1": "2026-10-06",
       "F2": "2026-10-20", "E1": "2026-09-01", "E2": "2026-09-01", "C1": "2026-11-10"}


def account(a):
    return [a, f"客户{a}", "residential", "", f"{a.lower()}@example.com", "13900000001", "zh-CN", "", ""]


def bills(day):
    rows = [[f"B{a}", a, DUE[a][:7], "100.00", DUE[a]] for a in DUE]
    rows.append(["BE2b", "E2", "2026-10", "100.00", "2026-10-25"])
    if day >= D2:
        rows = [r for r in rows if r[0] not in ("BR3", "BF2", "BE2")]   # paid, netted by billing
    return rows


def ids(day):
    if day == D1:
        return list(DUE)
    return [a for a in DUE if a != "F2" and not (day == D3 and a == "R3")]


def test_roll_rates_month_to_date_against_the_hand_worked_example(tmp_path, monkeypatch, engine, db_url):
    from arrears.report.cycle_report import write_cycle_report
    land, outbox = tmp_path / "landing", tmp_path / "outbox"
    for day in (D1, D2, D3):
        landing(land / day.isoformat(), [account(a) for a in ids(day)], bills(day), [], [])
    use_database(monkeypatch, db_url, land, outbox)
    for day in (D1, D2, D3):
        run_cycle(day, deliver=False)

    s1, s2, s3 = (summary(outbox, d) for d in (D1, D2, D3))
    empty = {"accounts": 0, "moved_on": None, "stayed": None, "cured": None, "rolled_back": None}
    assert s1["roll_rates"]["by_stage"] == {s: empty for s in ("reminder", "formal_notice", "escalation")}
    assert s1["previous_cycle"] is None and s1["deltas"] is None
    third = 0.3333
    assert s2["roll_rates"] == {"month_start": "2026-11-01", "by_stage": {
        "reminder": {"accounts": 3, "moved_on": third, "stayed": third, "cured": third, "rolled_back": 0.0},
        "formal_notice": {"accounts": 2, "moved_on": 0.5, "stayed": 0.0, "cured": 0.5, "rolled_back": 0.0},
        "escalation": {"accounts": 2, "moved_on": 0.0, "stayed": 0.5, "cured": 0.0, "rolled_back": 0.5}}}
    assert s3["roll_rates"]["by_stage"] == {
        "reminder": {"accounts": 4, "moved_on": 0.25, "stayed": 0.5, "cured": 0.25, "rolled_back": 0.0},
        "formal_notice": {"accounts": 4, "moved_on": 0.25, "stayed": 0.5, "cured": 0.25, "rolled_back": 0.0},
        "escalation": {"accounts": 4, "moved_on": 0.0, "stayed": 0.75, "cured": 0.0, "rolled_back": 0.25}}
    deltas = s3["deltas"]
    assert s3["previous_cycle"] == "2026-11-06" and deltas["accounts"] == -1
    assert deltas["roll_rates"]["reminder"] == {"moved_on": -0.0833, "stayed": 0.1667,
                                                "cured": -0.0833, "rolled_back": 0.0}
    assert deltas["roll_rates"]["escalation"]["stayed"] == 0.25
    assert {k: v for k, v in deltas["by_stage"].items() if v["accounts"]} == {
        "current": {"accounts": -1, "outstanding": "0.00"}}     # R3 left with nothing owed
    # D2 against D1: F2 (100.00) left; E2 moved to formal with 100.00, F1 to escalation.
    assert s2["deltas"]["by_stage"]["formal_notice"] == {"accounts": 0, "outstanding": "0.00"}
    assert s2["deltas"]["by_stage"]["escalation"] == {"accounts": 0, "outstanding": "-100.00"}
    assert s2["deltas"]["by_stage"]["reminder"] == {"accounts": -2, "outstanding": "-200.00"}

    path, _ = write_cycle_report(engine, outbox, D3)
    html = path.read_text()
    assert "Roll rates, month to date (2026-11-01 &ndash; 2026-11-07)" in html
    assert "<tr><td>escalation</td><td>4</td><td>0.0 %</td><td>75.0 %</td><td>0.0 %</td><td>25.0 %</td></tr>" in html
    assert 'id="roll-rates-plot"' in html
