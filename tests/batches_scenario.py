"""A collection database in which the real ingest, staging and policy decided two cycle dates,
so that D has lawyer letters, credit-report records and both agent lists.

  D0 = 2026-11-06, D = 2026-11-16 (cycle dates ten days apart)
  A2 zh-CN 李娜, 1000.00 due 09-15: DPD 52 on D0 (pre-notice), 62 on D -> letter + credit report
  A3 en "Acme & Trading <HK>", non-residential, bills 2025-12 3000.00 due 09-10 and 2026-08
     200.00 due 09-20: pre-notice on D0, letter + credit report on D
  A1 formal notice (DPD 20 on D) -> call list only
  A6 disputed escalation -> nothing
  A7 escalation on D only (DPD 40, first time): pre-notice, field visit, no report yet
"""
from __future__ import annotations

from datetime import date

from factories import deliver, landing

D0, D = date(2026, 11, 6), date(2026, 11, 16)

ACCOUNTS = [
    ["A1", "王伟", "residential", "北京市朝阳区人民路1号", "a1@example.com", "13900000001", "zh-CN", "", ""],
    ["A2", "李娜", "residential", "上海市浦东新区建设路2号", "a2@example.com", "13900000002", "zh-CN", "", ""],
    ["A3", "Acme & Trading <HK>", "non_residential", "广州市天河区中山路3号", "a3@example.com", "13900000003", "en", "", "sms"],
    ["A6", "陈静", "residential", "", "a6@example.com", "13900000006", "", "", ""],
    ["A7", "赵磊", "residential", "杭州市西湖区文三路7号", "a7@example.com", "13900000007", "zh-CN", "medical_device", ""],
]
BILLS = [
    ["B1", "A1", "2026-10", "150.00", "2026-10-27"],
    ["B2", "A2", "2026-08", "1000.00", "2026-09-15"],
    ["B3a", "A3", "2025-12", "3000.00", "2026-09-10"],
    ["B3b", "A3", "2026-08", "200.00", "2026-09-20"],
    ["B6", "A6", "2026-08", "400.00", "2026-09-10"],
    ["B7", "A7", "2026-09", "300.00", "2026-10-07"],
]
EVENTS = [["E6", "A6", "dispute_opened", "2026-11-01", "", "", "bill disputed"]]


def build(engine, tmp_path, replay_on_d: bool = False) -> None:
    from arrears.cycle.decide import decide_cycle, stage_bills
    from arrears.cycle.run import CycleRun
    from arrears.ingest import ingest_delivery
    from arrears.policy import load_policy
    from arrears.policy.business_days import BusinessCalendar

    policy = load_policy()
    for day in (D0, D):
        # A7's bill is not yet in the D0 extract (it entered arrears later).
        bills = [b for b in BILLS if day == D or b[1] != "A7"]
        folder = landing(tmp_path / "landing" / day.isoformat(), ACCOUNTS, bills, [], EVENTS)
        ingest_delivery(engine, folder, day)
        stage_bills(engine, day)
        run_type = "backfill" if (replay_on_d and day == D) else "scheduled"
        run = CycleRun(day, run_id=f"run-{day}", run_type=run_type)
        decide_cycle(engine, run, policy, BusinessCalendar.for_policy(policy))
        if not run.replay:  # the day's messages are delivered: their pre-notices are served
            deliver(engine, tmp_path / "delivered", run, policy)  # not the batches folder


def actions_on(engine, day: date) -> dict[str, str]:
    from sqlalchemy import text
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT account_id, actions FROM decisions WHERE cycle_date = :d"),
                                 {"d": day}).all())
