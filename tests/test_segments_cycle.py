"""Segments through the real ingest, staging and decisions on both databases: the facts the
rules need are read from the record (payments, delivered reminders, served notices, broken
promises), and the segment reaches the decisions table, decisions.csv, the audit trail, the
summary and the agents' lists (priority by segment, then amount)."""
from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from factories import landing

D = date(2026, 11, 16)
DAYS = [D - timedelta(days=n) for n in (20, 12, 8, 0)]


def ago(n: int) -> str:
    return (D - timedelta(days=n)).isoformat()


ACCOUNTS = [[aid, "王伟", "residential", f"{aid} 路1号", f"{aid.lower()}@example.com", "13900000001",
             "zh-CN", "", ""] for aid in ("F1", "H1", "N1", "P1", "W1", "W2", "W3")]
# Open items as each delivery lists them (payments already netted in later deliveries).
AMOUNTS = {"F1": ["200.00", "200.00", "150.00", "150.00"], "H1": ["500.00", "500.00", "400.00", "300.00"]}
DUE = {"F1": 40, "H1": 40, "N1": 40, "P1": 40, "W1": 100, "W2": 120, "W3": 110}
FIXED = {"N1": "300.00", "P1": "400.00", "W1": "500.00", "W2": "800.00", "W3": "250.00"}
PAYMENTS = {DAYS[1]: [["PF1", "F1", "", "50.00", f"{ago(15)}T10:00:00+08:00"],
                      ["PH1", "H1", "", "100.00", f"{ago(15)}T10:00:00+08:00"]],
            DAYS[2]: [["PH2", "H1", "", "100.00", f"{ago(10)}T10:00:00+08:00"]]}
EVENTS = [["EW1", "W1", "promise_to_pay", ago(30), "100.00", ago(21), ""],
          ["EW2", "W1", "promise_to_pay", ago(20), "100.00", ago(13), ""],
          ["EP1", "P1", "dispute_opened", ago(60), "", "", ""],
          ["EP2", "P1", "dispute_closed", ago(30), "", "", ""],
          # Staff served W3's disconnection notice in person 100 days ago (CONTRACT §8).
          ["ES3", "W3", "notice_served", ago(100), "", "", "disconnection_notice"]]


def _deliver_and_decide(engine, tmp_path):
    from arrears.cycle.decide import decide_cycle, stage_bills
    from arrears.cycle.run import CycleRun
    from arrears.ingest import ingest_delivery
    from arrears.policy import load_policy
    from arrears.policy.business_days import BusinessCalendar
    policy = load_policy()
    for i, day in enumerate(DAYS):
        bills = [[f"B{aid}", aid, "2026-08", AMOUNTS[aid][i] if aid in AMOUNTS else FIXED[aid],
                  ago(DUE[aid])] for aid in DUE]
        folder = landing(tmp_path / day.isoformat(), ACCOUNTS, bills, PAYMENTS.get(day, []),
                         EVENTS if i == 0 else [])
        ingest_delivery(engine, folder, day)
        if i == 0:
            with engine.begin() as conn:
                # F1's reminder of D-20 was delivered; W2 was served a notice 95 days ago.
                conn.execute(text(
                    "INSERT INTO outbox (idem_key, cycle_date, account_id, channel, address, language,"
                    " kinds, template, template_version, body_text, content_sha256, message_id, status,"
                    " queued_at) VALUES (:k, :d, 'F1', 'sms', '+8613900000001', 'zh-CN', 'reminder',"
                    " 'messages/sms/zh-CN', 'x', 'body', 'x', '<m1@x>', 'sent', '2026-10-27T00:30:00Z')"),
                    {"k": f"{day}:F1:sms", "d": day})
                conn.execute(text(
                    "INSERT INTO disconnection_notices (notice_id, account_id, served_on,"
                    " earliest_disconnection, closed_on, closed_reason)"
                    " VALUES ('N-W2', 'W2', :s, :e, :s2, 'cancelled')"),
                    {"s": D - timedelta(days=95), "e": D - timedelta(days=88), "s2": D - timedelta(days=60)})
        stage_bills(engine, day)
        result = decide_cycle(engine, CycleRun(day, run_id=f"run-{day}"), policy,
                              BusinessCalendar.for_policy(policy))
    return result


@pytest.fixture
def decided(engine, tmp_path):
    return engine, _deliver_and_decide(engine, tmp_path)


EXPECTED = {"F1": ("forgetful", f"segment:forgetful:paid_{ago(15)}_after_reminder_{ago(20)}"),
            "H1": ("hardship", "segment:hardship:part_payments_2_in_90_days"),
            "N1": ("new", "segment:new:no_rule_applies"),
            "P1": ("disputing", f"segment:disputing:dispute_closed_{ago(30)}"),
            "W1": ("wilful", "segment:wilful:broken_2_in_180_days"),
            "W2": ("wilful", f"segment:wilful:dpd_120_no_payment_90_days_after_notice_{ago(95)}"),
            "W3": ("wilful", f"segment:wilful:dpd_110_no_payment_90_days_after_notice_{ago(100)}")}


def test_each_rule_is_read_from_the_record(decided):
    engine, result = decided
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT account_id, segment, reasons FROM decisions"
                                 " WHERE cycle_date = :d"), {"d": D}).all()
    got = {aid: (seg, next(r for r in reasons.split(";") if r.startswith("segment:")))
           for aid, seg, reasons in rows}
    assert got == EXPECTED
    assert result.by_segment == {"forgetful": 1, "hardship": 1, "new": 1, "disputing": 1, "wilful": 3}


def test_segment_in_decisions_csv_summary_report_and_audit_trail(decided, tmp_path):
    from arrears.audit.sweep import decision_entries
    from arrears.cycle.outputs import decision_counts, write_decisions_csv
    from arrears.cycle.run import CycleRun
    from arrears.report.cycle_report import render
    engine, _ = decided
    path = write_decisions_csv(engine, tmp_path / "outbox", D)
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert rows[0] == ["account_id", "stage", "dpd", "outstanding", "late_fee", "actions", "holds",
                       "segment"]
    assert {r[0]: r[7] for r in rows[1:]} == {a: s for a, (s, _) in EXPECTED.items()}
    counts = decision_counts(engine, D)
    assert counts["by_segment"] == {"disputing": 1, "hardship": 1, "wilful": 3, "forgetful": 1, "new": 1}
    with engine.connect() as conn:
        entries = {e.account_id: e.payload for e in decision_entries(conn, CycleRun(D, run_id=f"run-{D}"))}
    assert entries["W2"]["segment"] == "wilful" and entries["W2"]["late_fee_waived"] is False
    html, _ = render(engine, tmp_path / "outbox", D)
    assert "Segment" in html and "wilful" in html


def test_timeline_shows_the_segment():
    from arrears.audit import trail
    from arrears.audit.timeline import describe
    entry = trail.Recorded(seq=1, entry_key="decision/x", kind="decision", account_id="W1", cycle_date=D,
                           payload={"stage": "escalation", "dpd": 100, "outstanding_fen": 50_000,
                                    "late_fee_fen": 5_000, "actions": ["lawyer_letter"], "holds": [],
                                    "reasons": ["segment:wilful:broken_2_in_180_days"],
                                    "policy_version": "v", "segment": "wilful",
                                    "late_fee_waived": True},
                           run_id="r", task_id="decide", try_number=1,
                           recorded_at="2026-11-16T00:40:00Z", prev_hash="", entry_hash="")
    what, rule = describe(entry)
    assert what.startswith("escalation [wilful] at DPD 100") and "late fee 50.00 (waived)" in what
    assert "segment:wilful:broken_2_in_180_days" in rule


def test_agents_lists_are_ordered_by_segment_then_amount_with_a_hint_per_segment(decided, tmp_path):
    from arrears.batches.agent_lists import write_agent_lists
    from arrears.outbox_files import as_storage_path, day_folder
    engine, _ = decided
    folder = day_folder(as_storage_path(tmp_path / "lists"), D)
    write_agent_lists(engine, folder, D)
    visits = list(csv.DictReader(io.StringIO(
        (tmp_path / "lists" / D.isoformat() / "field_visits.csv").read_text(encoding="utf-8"))))
    # hardship, disputing, wilful (larger outstanding first), new, forgetful
    assert [v["account_id"] for v in visits] == ["H1", "P1", "W2", "W1", "W3", "N1", "F1"]
    assert [v["segment"] for v in visits] == ["hardship", "disputing", "wilful", "wilful", "wilful",
                                              "new", "forgetful"]
    hints = {v["account_id"]: v["visit_hints"] for v in visits}
    assert "Hardship (困难型)" in hints["H1"] and "Disputing (质疑型)" in hints["P1"]
    assert "Wilful (恶意拖欠型)" in hints["W1"] and "Offer payment" not in hints["W1"]
    assert "Forgetful (忘记型)" in hints["F1"] and "autopay" in hints["F1"]
    assert "(" not in hints["N1"].split(";")[0] and "Offer payment" in hints["N1"]


def test_the_days_messages_carry_the_segments_wording(decided):
    from arrears.delivery.outbox import planned_messages
    from arrears.policy import load_policy
    engine, _ = decided
    messages = {(m["account_id"], m["channel"]): m for m in planned_messages(engine, D, load_policy(), "x")}
    wilful = messages[("W1", "email")]["body_text"]
    # W1 is served a disconnection notice today: the next step of due process is that date.
    assert "下一步：如欠费在 2026年11月23日 前仍未结清" in wilful and "中止供电" in wilful
    assert "特殊困难" not in wilful + messages[("W1", "sms")]["body_text"]
