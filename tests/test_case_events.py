"""CONTRACT §1/§8: case events posted by people, the extract's new event types and the
`instalments` column; one event whichever way it came (SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import text

from arrears.audit import trail
from arrears.ingest import ingest_delivery
from arrears.ingest import validate as v
from arrears.ingest.posted import post_event
from factories import landing, write_csv

D = date(2026, 11, 16)
ACCOUNTS = [["A1", "王伟", "residential", "", "", "", "", "", ""],
            ["A2", "李娜", "residential", "", "", "", "", "", ""]]
BILLS = [["B1", "A1", "2026-09", "300.00", "2026-10-01"]]
# 10:00 in Shanghai on D: known from the cycle of D+1.
NOW = datetime(2026, 11, 16, 2, 0, tzinfo=timezone.utc)
EVENT_HEADER = ["event_id", "account_id", "event_type", "effective_date", "amount", "until_date",
                "note", "instalments"]


def row(**kw) -> dict:
    base = {"event_id": "E1", "account_id": "A1", "event_type": "call_outcome",
            "effective_date": "2026-11-15", "note": "reached"}
    return {**base, **kw}


@pytest.mark.parametrize("kw, reason", [
    (dict(event_type="notice_served", note="by hand"), "notice_served needs note"),
    (dict(event_type="call_outcome", note="chatted"), "call_outcome needs note"),
    (dict(event_type="payment_plan", instalments="2026-12-01:100.00;2026-12-01:50.00"), "twice"),
    (dict(event_type="payment_plan", instalments="2026-12-01"), "not YYYY-MM-DD:amount"),
    (dict(event_type="payment_plan", instalments="2026-12-01:abc"), "not a plain decimal"),
    (dict(event_type="payment_plan", instalments="2026-12-01:-5"), "not positive"),
    (dict(event_type="payment_plan", instalments="2026-13-01:5"), "not a date"),
    (dict(event_type="payment_plan", until_date="2026-12-01", instalments="2027-01-01:5"),
     "after until_date"),
    (dict(event_type="call_outcome", instalments="2026-12-01:5"), "only for a payment_plan"),
    (dict(event_type="payment_plan"), "needs an until_date"),
])
def test_bad_events_say_why(kw, reason):
    with pytest.raises(v.RowError, match=reason):
        v.event_row(row(**kw), {"A1"})


def test_new_event_types_and_a_schedule_are_clean():
    assert v.event_row(row(note="refused: will pay Friday"), {"A1"})["note"] == \
        "refused: will pay Friday"
    served = v.event_row(row(event_type="notice_served", note="credit_prenotice"), {"A1"})
    assert served["event_type"] == "notice_served"
    plan = v.event_row(row(event_type="payment_plan",
                           instalments=" 2027-01-10:100 ; 2026-12-10:100.5"), {"A1"})
    # Normalised (due-date order, two decimals); the plan ends with its last instalment.
    assert plan["instalments"] == "2026-12-10:100.50;2027-01-10:100.00"
    assert plan["until_date"] == date(2027, 1, 10)
    assert v.parse_instalments(plan["instalments"]) == ((date(2026, 12, 10), 10050),
                                                         (date(2027, 1, 10), 10000))


def _events(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(map(str, r)) for r in conn.execute(text(
            "SELECT event_id, event_type, instalments, first_seen, source, recorded_by"
            " FROM case_events ORDER BY event_id"))]


def test_posted_events_are_recorded_once_and_bad_ones_quarantined(engine, tmp_path):
    ingest_delivery(engine, landing(tmp_path / D.isoformat(), ACCOUNTS, BILLS), D)
    plan = {"event_id": "P1", "account_id": "A1", "event_type": "payment_plan",
            "effective_date": "2026-11-16",
            "instalments": [{"due_date": "2026-12-10", "amount": "100.00"},
                            {"due_date": "2027-01-10", "amount": 200}]}
    first = post_event(engine, plan, "agent.li", NOW)
    assert (first.status, first.known_from) == ("recorded", date(2026, 11, 17))
    again = post_event(engine, dict(plan), "agent.wang", NOW)
    assert again.status == "duplicate"
    changed = post_event(engine, {**plan, "instalments": plan["instalments"][:1]}, "agent.wang", NOW)
    assert changed.status == "quarantined" and "recorded before with other content" in changed.reason
    for body, reason in [
        ({**plan, "event_id": "P2", "account_id": "A9"}, "account_id 'A9' is not in"),
        ({**plan, "event_id": "P3", "instalments": [{"due_date": "2026-12-10",
                                                     "amount": "ten"}]}, "not a plain decimal"),
        ({**plan, "event_id": "P4", "instalments": "2026-12-10:5"}, "list of {due_date, amount}"),
        ({**plan, "event_id": ["x"]}, "event_id must be text"),
        ([1, 2], "JSON object"),
    ]:
        got = post_event(engine, body, "agent.li", NOW)
        assert got.status == "quarantined" and reason in got.reason, (body, got)
    assert _events(engine) == [("P1", "payment_plan", "2026-12-10:100.00;2027-01-10:200.00",
                                "2026-11-17", "api", "agent.li")]
    with engine.connect() as conn:
        q = conn.execute(text("SELECT cycle_date, file, line, reason FROM quarantine"
                              " ORDER BY line")).all()
        recorded = trail.entries(conn, kind="case_event")
        rejected = trail.entries(conn, kind="quarantine")
    assert [(str(r[0])[:10], r[1], r[2]) for r in q] == \
        [("2026-11-17", "api:case-events", n) for n in range(1, 7)]
    assert [(e.entry_key, e.payload["recorded_by"]) for e in recorded] == \
        [("case_event/P1", "agent.li")]
    assert [e.payload["recorded_by"] for e in rejected] == ["agent.wang"] + ["agent.li"] * 5
    assert "note" not in recorded[0].payload  # free text stays out of the trail

    # A re-delivered extract of D+1 keeps what people posted (and their rejections).
    d1 = date(2026, 11, 17)
    ingest_delivery(engine, landing(tmp_path / d1.isoformat(), ACCOUNTS, BILLS), d1)
    ingest_delivery(engine, landing(tmp_path / d1.isoformat(), ACCOUNTS, BILLS), d1)
    assert [e[0] for e in _events(engine)] == ["P1"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM quarantine")).scalar_one() == 6


def test_an_event_is_the_same_whichever_way_it_came(engine, tmp_path):
    """The extract carries an event an agent already posted: the same content is one event;
    other content is quarantined; the instalments column loads a schedule."""
    ingest_delivery(engine, landing(tmp_path / D.isoformat(), ACCOUNTS, BILLS), D)
    post_event(engine, {"event_id": "P1", "account_id": "A1", "event_type": "payment_plan",
                        "effective_date": "2026-11-16",
                        "instalments": [{"due_date": "2026-12-10", "amount": "100"}]},
               "agent.li", NOW)
    d1 = date(2026, 11, 17)
    folder = landing(tmp_path / d1.isoformat(), ACCOUNTS, BILLS)
    write_csv(folder / "case_events.csv", EVENT_HEADER, [
        ["P1", "A1", "payment_plan", "2026-11-16", "", "2026-12-10", "", "2026-12-10:100.00"],
        ["C1", "A2", "call_outcome", "2026-11-16", "", "", "no_answer", ""],
        ["C1", "A2", "call_outcome", "2026-11-16", "", "", "no_answer", ""],
        ["S1", "A1", "notice_served", "2026-11-16", "", "", "disconnection_notice", ""],
        ["X1", "A1", "payment_plan", "2026-11-16", "", "", "", "2026-12-10:abc"],
    ])
    result = ingest_delivery(engine, folder, d1)
    assert result.rows["case_events.csv"] == 3 and result.quarantined["case_events.csv"] == 2
    assert [(e[0], e[4]) for e in _events(engine)] == [("C1", "extract"), ("P1", "api"),
                                                       ("S1", "extract")]
    # Posting what the extract delivered is the same event, not a second one.
    same = post_event(engine, {"event_id": "C1", "account_id": "A2", "event_type": "call_outcome",
                               "effective_date": "2026-11-16", "note": "no_answer"},
                      "agent.li", NOW)
    assert same.status == "duplicate"
