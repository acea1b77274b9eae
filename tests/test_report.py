"""cycle_report.html from a crafted collection database: tables, deltas, quarantine without raw
rows, messages by outcome, batch hashes, the ageing plot; the same state gives the same bytes."""
from __future__ import annotations

import base64
import hashlib
import re
from datetime import date

from sqlalchemy import text

from arrears.report.cycle_report import write_cycle_report

D0, D1 = date(2026, 11, 16), date(2026, 11, 17)


def _decision(conn, day, account, stage, dpd, fen, actions="", holds=""):
    conn.execute(text(
        "INSERT INTO decisions (cycle_date, account_id, stage, stage_entered_on, dpd,"
        " outstanding_fen, late_fee_fen, actions, holds, message_kinds, reasons, policy_version)"
        " VALUES (:d, :a, :s, :d, :dpd, :o, 0, :acts, :holds, '', '', 'v1')"),
        {"d": day, "a": account, "s": stage, "dpd": dpd, "o": fen, "acts": actions,
         "holds": holds})


def _seed(engine, outbox):
    with engine.begin() as conn:
        _decision(conn, D0, "A1", "reminder", 3, 20000, "email;sms")
        _decision(conn, D1, "A1", "reminder", 4, 20000)
        _decision(conn, D1, "A2", "escalation", 76, 100000, "lawyer_letter;field_visit")
        _decision(conn, D1, "A3", "escalation", 200, 5000, "", "disputed")
        conn.execute(text("INSERT INTO quarantine (cycle_date, file, line, reason, raw) VALUES"
                          " (:d, 'accounts.csv', 7, 'bad email x@y for 13900000009',"
                          " '王伟,secret row')"), {"d": D1})
    letters = outbox / D1.isoformat() / "lawyer_letters"
    letters.mkdir(parents=True)
    (letters / "manifest.csv").write_text("account_id,file,outstanding,late_fee,sha256\n"
                                          "A2,A2.pdf,1000.00,76.00," + "a" * 64 + "\n")


def test_report_contents_and_determinism(engine, tmp_path):
    outbox = tmp_path / "outbox"
    _seed(engine, outbox)
    path, facts = write_cycle_report(engine, outbox, D1)
    html = path.read_text(encoding="utf-8")
    assert facts["accounts"] == 3 and facts["quarantined"] == 1
    assert facts["previous_cycle"] == "2026-11-16"
    assert "3 accounts (+2 against 2026-11-16), 1250.00 CNY outstanding" in html
    # stage rows: count, amount, deltas against D0
    assert re.search(r"<td>escalation</td><td>2</td><td>1050.00</td><td>\+2</td><td>\+1050.00</td>",
                     html)
    assert re.search(r"<td>email</td><td>0</td><td>0.00</td><td>-1</td><td>-200.00</td>", html)
    assert re.search(r"<td>disputed</td><td>1</td><td>50.00</td>", html)
    # quarantine: file, line, reason, masked; never the raw row
    assert "<td>accounts.csv</td><td>7</td>" in html
    assert "secret row" not in html and "王伟" not in html and "13900000009" not in html
    manifest = (outbox / D1.isoformat() / "lawyer_letters" / "manifest.csv").read_bytes()
    assert hashlib.sha256(manifest).hexdigest() in html
    # the outbox exists (every migration runs) and holds nothing for D: an empty table, no excuse
    assert 'id="messages"' in html and "no outbox to count" not in html
    png = base64.b64decode(re.search(r'data:image/png;base64,([A-Za-z0-9+/=]+)', html).group(1))
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    # the same state, the same bytes
    again, _ = write_cycle_report(engine, outbox, D1)
    assert again.read_bytes() == html.encode("utf-8")


def test_messages_by_outcome_from_the_outbox(engine, tmp_path):
    with engine.begin() as conn:
        _decision(conn, D1, "A1", "reminder", 4, 20000, "email;sms")
        for channel, status in (("email", "sent"), ("sms", "deferred"), ("email", "failed")):
            conn.execute(text(
                "INSERT INTO outbox (idem_key, cycle_date, account_id, channel, address, language,"
                " kinds, template, template_version, body_text, content_sha256, message_id,"
                " status, queued_at) VALUES (:k, :d, 'A1', :c, 'x', 'zh-CN', 'reminder', 't', 'v',"
                " 'b', 'h', :k, :s, 'now')"), {"k": f"{channel}-{status}", "d": D1, "c": channel,
                                               "s": status})
    _, facts = write_cycle_report(engine, tmp_path / "outbox", D1)
    assert facts["messages"] == {"email": {"sent": 1, "failed": 1}, "sms": {"deferred": 1}}
