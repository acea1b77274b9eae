"""`arrears audit account|verify|cycle` on a crafted trail (the installed console script)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from arrears.audit import trail
from arrears.audit.trail import Entry
from arrears.cli import main
from arrears.db import connect

D1, D2 = date(2026, 11, 16), date(2026, 11, 23)


@pytest.fixture
def crafted(tmp_path, monkeypatch):
    db = tmp_path / "arrears.db"
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    engine = connect(f"sqlite:///{db}")
    # Recorded out of date order on purpose: a later sweep picked up the D1 message late.
    trail.record(engine, [
        Entry("decision/2026-11-23/A9", "decision", {
            "stage": "escalation", "dpd": 38, "outstanding_fen": 25000, "late_fee_fen": 950,
            "actions": ["disconnection_notice"], "holds": [], "policy_version": "default-3",
            "reasons": ["stage:escalation:dpd_38", "disconnection_notice:earliest_2026-12-01"]},
            "A9", D2, "scheduled__2026-11-23", "decide", 1),
        Entry("decision/2026-11-16/A9", "decision", {
            "stage": "formal_notice", "dpd": 31 - 7, "outstanding_fen": 25000, "late_fee_fen": 600,
            "actions": ["email", "call_list"], "holds": ["opt_out_sms"],
            "policy_version": "default-3",
            "reasons": ["stage:formal_notice:dpd_24", "sms:opted_out", "email:due",
                        "call_list:formal_notice"]}, "A9", D1, "scheduled__2026-11-16", "decide", 1),
        Entry("message/2026-11-16:A9:email/sent", "message", {
            "channel": "email", "outcome": "sent", "template": "email", "template_version": "ab12",
            "content_sha256": "c" * 64, "kinds": ["formal_notice"]},
            "A9", D1, "scheduled__2026-11-16", "dispatch_messages", 2),
        Entry("notice/N-A9-1/served", "notice", {
            "notice_id": "N-A9-1", "served_on": "2026-11-23",
            "earliest_disconnection": "2026-12-01"}, "A9", D2, "scheduled__2026-11-23", "audit", 1),
        Entry("decision/2026-11-16/B1", "decision", {"stage": "reminder", "reasons": []}, "B1", D1),
    ])
    return engine


def test_account_timeline_in_order_with_rules(crafted, capsys):
    assert main(["audit", "account", "A9"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line[:4] == "2026"]
    assert [line.split()[2] for line in lines] == ["decision", "message", "decision", "notice"]
    assert lines[0].startswith("2026-11-16") and lines[-1].startswith("2026-11-23")
    assert "rule: stage:formal_notice:dpd_24; sms:opted_out; email:due; call_list:formal_notice" \
        " (policy default-3)" in out
    assert "disconnection_notice:earliest_2026-12-01" in out
    assert "by scheduled__2026-11-16 / dispatch_messages / try 2" in out
    assert "B1" not in out
    assert main(["audit", "account", "NOPE"]) == 1


def test_verify_and_cycle(crafted, capsys):
    assert main(["audit", "verify"]) == 0
    assert "head #5, full verification (5 entries read)" in capsys.readouterr().out
    assert main(["audit", "cycle", "2026-11-16", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["by_kind"] == {"decision": 2, "message": 1}
    assert summary["messages"] == {"email:sent": 1}
    with crafted.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_entries_no_update"))
        conn.execute(text("UPDATE audit_entries SET payload = '{}' WHERE seq = 3"))
    assert main(["audit", "verify"]) == 1
    assert "BROKEN at entry #3" in capsys.readouterr().out


def test_console_script_is_installed(crafted):
    script = Path(sys.executable).with_name("arrears")
    done = subprocess.run([str(script), "audit", "verify"], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "audit chain intact" in done.stdout
