"""Champion/challenger (CONTRACT §5): stable hash assignment, the challenger deciding its share,
the contract's contact limits binding it, the arm and version on every decision, the read-out.

The cycle runs ten days (Mon 2 - Wed 11 Nov 2026) over 40 accounts through the cycle's own
steps (ingest, stage, decide, queue, dispatch to files), on both databases. The champion names
experiment `exp-fast` with the challenger `fast` (stages from DPD 1 / 3 / 6, so accounts enter new
stages, and would be messaged, much more often) on half of the accounts.
"""
from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, timedelta

import pytest

from cycle_steps import context, rows, use_database
from factories import landing

START = date(2026, 11, 2)
DAYS = [START + timedelta(days=n) for n in range(10)]
N = 40
LEAVERS = {"X05", "X12", "X21", "X30"}  # pay in full on 11-04 (delivered 11-05), gone from 11-06


def write_policies(folder):
    from arrears.paths import POLICY_DIR
    folder.mkdir()
    (folder / "default.toml").write_text((POLICY_DIR / "default.toml").read_text())
    (folder / "champ.toml").write_text(
        'version = "champ-1"\n[experiment]\nid = "exp-fast"\nchallenger = "fast"\nshare = 0.5\n')
    (folder / "fast.toml").write_text(
        'version = "fast-1"\n[stages]\nreminder_from = 1\nformal_notice_from = 3\nescalation_from = 6\n')
    return folder


def account_row(i: int, day: date) -> list:
    a = f"X{i:02d}"
    opt_out = "sms" if i % 7 == 0 or (a == "X09" and day >= START + timedelta(days=3)) else ""
    return [a, f"客户{i}", "residential", "", f"x{i}@example.com", f"139000000{i:02d}", "zh-CN", "", opt_out]


def bill_row(i: int) -> list:
    return [f"B{i:02d}", f"X{i:02d}", "2026-10", f"{100 + i}.00", (START - timedelta(days=i % 12)).isoformat()]


@pytest.fixture
def experiment(tmp_path, monkeypatch, engine, db_url):
    from arrears import orchestration
    from arrears.cycle import tasks as cycle_steps
    from arrears.ingest import tasks as ingest_steps
    from arrears.cycle.decide import decide_cycle
    from arrears.delivery import tasks as delivery
    from arrears.delivery.outbox import queue_messages
    from arrears.policy import load_policy
    from arrears.policy.business_days import BusinessCalendar
    from datetime import datetime, timezone
    land, outbox = tmp_path / "landing", tmp_path / "outbox"
    for day in DAYS:
        ids = [i for i in range(N) if not (f"X{i:02d}" in LEAVERS and day > START + timedelta(days=3))]
        payments = ([[f"P{a}", a, "", f"{100 + int(a[1:])}.00", "2026-11-04T10:00:00+08:00"]
                     for a in sorted(LEAVERS)] if day == START + timedelta(days=3) else [])
        events = ([["E1", "X03", "dispute_opened", "2026-11-04", "", "", "bill queried"],
                   ["E2", "X04", "deceased", "2026-10-01", "", "", ""]]
                  if day == START + timedelta(days=2) else [])
        landing(land / day.isoformat(), [account_row(i, day) for i in ids],
                [bill_row(i) for i in ids], payments, events)
    use_database(monkeypatch, db_url, land, outbox)
    policy = load_policy("champ", write_policies(tmp_path / "policy"))
    calendar = BusinessCalendar.for_policy(policy)
    for day in DAYS:
        ingest_steps.ingest(context(day, task_id="ingest"))
        cycle_steps.stage(context(day, task_id="stage"))
        run = orchestration.run_from_context(context(day, task_id="decide"))
        decide_cycle(engine, run, policy, calendar)
        queue_messages(engine, run, policy, "example.com",
                       datetime(day.year, day.month, day.day, 2, tzinfo=timezone.utc))
        delivery.dispatch_cycle(context(day, task_id="dispatch_messages"))
    return engine, policy, outbox, calendar


def test_arms_are_stable_deterministic_and_near_their_share():
    from arrears.policy.experiment import CHALLENGER, arm_of, bucket
    ids = [f"ACC{n:07d}" for n in range(10_000)]
    for share in (0.1, 0.5):
        arms = [arm_of("exp-2026-12", a, share) for a in ids]
        assert abs(arms.count(CHALLENGER) / len(ids) - share) <= 0.03
        assert arms == [arm_of("exp-2026-12", a, share) for a in reversed(ids)][::-1]  # any order
    # A fixed, documented hash (not Python's per-process hash()): the same on every worker.
    assert bucket("exp-2026-12", "ACC0000001") == int.from_bytes(
        __import__("hashlib").sha256(b"exp-2026-12\x1fACC0000001").digest()[:8], "big") / 2 ** 64
    # Growing the share only moves champion accounts to the challenger, never back.
    small = {a for a in ids if arm_of("exp-2026-12", a, 0.1) == CHALLENGER}
    large = {a for a in ids if arm_of("exp-2026-12", a, 0.2) == CHALLENGER}
    assert small < large
    # Another experiment id reshuffles: its challengers overlap the first's by chance only.
    other = {a for a in ids if arm_of("exp-2027-01", a, 0.1) == CHALLENGER}
    assert abs(len(other & small) / len(ids) - 0.01) <= 0.005


def test_a_challenger_that_loosens_a_contract_limit_is_refused(tmp_path):
    from arrears.policy import PolicyError, load_policy
    folder = write_policies(tmp_path / "policy")
    (folder / "loose.toml").write_text('version = "loose-1"\n[contact]\nmax_messages = 5\n')
    (folder / "champ2.toml").write_text(
        'version = "champ-2"\n[experiment]\nid = "e"\nchallenger = "loose"\nshare = 0.1\n')
    with pytest.raises(PolicyError, match="loosens contact_max_messages"):
        load_policy("champ2", folder)
    (folder / "same.toml").write_text(
        'version = "champ-1"\n[experiment]\nid = "e"\nchallenger = "champ"\nshare = 0.1\n')
    with pytest.raises(PolicyError, match="equals the champion's"):
        load_policy("same", folder)   # both arms would record version champ-1
    (folder / "bad.toml").write_text('version = "b"\n[experiment]\nid = "e"\nchallenger = "fast"\nshare = 1.5\n')
    with pytest.raises(PolicyError, match="share"):
        load_policy("bad", folder)


def test_each_arm_decides_its_accounts_and_the_contact_limits_bind_the_challenger(experiment):
    from arrears.policy.experiment import CHALLENGER, CHAMPION, arm_of
    engine, policy, outbox, _ = experiment
    decided = rows(engine, "SELECT account_id, cycle_date, stage, actions, reasons, policy_version,"
                           " experiment_id, arm FROM decisions ORDER BY account_id, cycle_date")
    arms = defaultdict(set)
    for account, _, _, _, _, version, exp, arm in decided:
        assert exp == "exp-fast"
        assert arm == arm_of("exp-fast", account, 0.5)                # stable: the hash, every day
        assert version == {CHAMPION: "champ-1", CHALLENGER: "fast-1"}[arm]
        arms[arm].add(account)
    assert len(arms[CHALLENGER]) >= 10 and len(arms[CHAMPION]) >= 10
    # The challenger really decides differently: DPD 6 is escalation there, reminder here.
    assert any(s == "escalation" and v == "fast-1" and "dpd_6" in r for _, _, s, _, r, v, _, _ in decided)

    sent = rows(engine, "SELECT account_id, cycle_date, channel, status FROM outbox")
    by_account = defaultdict(list)
    for account, day, channel, _status in sent:
        by_account[account].append((date.fromisoformat(str(day)[:10]), channel))
    capped = 0
    stage_of = {(a, str(d)[:10]): s for a, d, s, *_ in decided}
    for account in arms[CHALLENGER]:
        msgs = sorted(by_account[account])
        for day in DAYS:                                              # 3 in any 7 cycle dates
            assert sum(1 for d, _ in msgs if day - timedelta(days=6) <= d <= day) <= 3, account
        for (d1, c1), (d2, c2) in zip(msgs, msgs[1:]):                # a channel: 7 days per stage
            if c1 == c2 and stage_of[(account, d1.isoformat())] == stage_of[(account, d2.isoformat())]:
                assert (d2 - d1).days >= 7, (account, d1, d2)
        assert not [m for m in msgs if m[1] == "sms" and int(account[1:]) % 7 == 0]  # opted out
        capped += any("cap_3_in_7_days" in r for a, _, _, _, r, *_ in decided if a == account)
    assert capped                                                     # the cap did bind somewhere
    for account in ("X03", "X04"):                                    # disputed / deceased: nothing
        late = [m for m in by_account[account] if m[0] >= START + timedelta(days=3)]
        assert not late

    # decisions.csv carries the arm after the segment (publish's writer).
    from arrears.cycle.outputs import write_decisions_csv
    header, first = write_decisions_csv(engine, outbox, DAYS[-1]).read_text().splitlines()[:2]
    assert header == "account_id,stage,dpd,outstanding,late_fee,actions,holds,segment,arm"
    assert first.endswith("," + arm_of("exp-fast", first.split(",")[0], 0.5))


def test_experiment_report_per_arm(experiment, capsys, monkeypatch):
    from arrears.policy.experiment import CHALLENGER, CHAMPION, arm_of
    from arrears.report.cycle_report import write_cycle_report
    from arrears.report.experiment import experiment_report
    engine, _, outbox, _ = experiment
    report = experiment_report(engine, "exp-fast")
    arm = {a: arm_of("exp-fast", a, 0.5) for a in [f"X{i:02d}" for i in range(N)]}
    entered_current = {a for a in arm if int(a[1:]) % 12 == 0}       # due on START: DPD 0
    for name in (CHAMPION, CHALLENGER):
        mine = {a for a, x in arm.items() if x == name} - entered_current
        r = report["arms"][name]
        assert r["accounts"] == len(mine)
        assert r["cured"] == len(mine & LEAVERS)                     # gone on 11-06, within 30 days
        assert r["collected"] == f"{sum(100 + int(a[1:]) for a in mine & LEAVERS)}.00"
        assert r["disputes_opened"] == int("X03" in mine)
        assert r["opt_outs"] == int("X09" in mine)
        assert r["matured"] == 0                                     # ten days in: nobody has 30
        assert r["messages_per_account"] > 0
    cp, ch = report["arms"][CHAMPION], report["arms"][CHALLENGER]
    diff = report["cure_rate_difference"]
    from arrears.report.intervals import newcombe
    d, lo, hi = newcombe(ch["cured"], ch["accounts"], cp["cured"], cp["accounts"])
    assert diff["challenger_minus_champion"] == round(d, 4) and diff["ci95"] == [round(lo, 4), round(hi, 4)]
    assert "Newcombe" in diff["method"]
    assert ch["roll_rates"]["reminder"]["moved_on"] > cp["roll_rates"]["reminder"]["moved_on"]

    from arrears.cli import main
    from arrears.settings import Settings
    from dataclasses import replace
    loaded = Settings.load()
    monkeypatch.setattr(Settings, "load", classmethod(lambda cls: replace(loaded, db_url=str(engine.url.render_as_string(hide_password=False)))))
    assert main(["experiment", "report", "exp-fast", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == report
    assert main(["experiment", "report", "exp-fast"]) == 0
    assert "95 % CI" in capsys.readouterr().out
    assert main(["experiment", "report", "nope"]) == 1

    html = write_cycle_report(engine, outbox, DAYS[-1])[0].read_text()
    assert 'id="experiment-exp-fast"' in html and "Newcombe" in html
