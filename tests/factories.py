"""Small builders for test records and landing folders."""
from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

from arrears.model import Account, CaseEvent, History, OpenBill
from arrears.policy import load_policy
from arrears.policy.business_days import BusinessCalendar

POLICY = load_policy()
CALENDAR = BusinessCalendar()
D = date(2026, 11, 16)  # a Monday


def account(**kw) -> Account:
    base = dict(account_id="A1", holder_name="王伟", customer_class="residential",
                email="a1@example.com", mobile="+8613900000001")
    base.update(kw)
    for key in ("protections", "opt_out"):
        if isinstance(base.get(key), (set, list, tuple, str)):
            value = base[key]
            base[key] = frozenset(value.split(";") if isinstance(value, str) else value) - {""}
    return Account(**base)


def bill(due: date, fen: int = 10_000, bill_id: str = "B1", period: str | None = None) -> OpenBill:
    return OpenBill(bill_id, period or f"{due:%Y-%m}", due, fen)


def event(kind: str, effective: date, until: date | None = None, amount: int | None = None,
          event_id: str | None = None) -> CaseEvent:
    return CaseEvent(event_id or f"E-{kind}-{effective}", kind, effective, amount, until)


def earliest(served: date) -> date:
    return CALENDAR.earliest_disconnection(served, POLICY.disconnection_notice_days)


def decide_one(acct: Account | None = None, bills=(), events=(), history: History = History(),
               on: date = D):
    from arrears.policy import decide_account
    return decide_account(acct or account(), list(bills), list(events), history, on, POLICY, earliest)


def write_csv(path: Path, header: list[str], rows: list[list], encoding: str = "utf-8",
              bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig" if bom else encoding, newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


ACCOUNT_HEADER = ["account_id", "holder_name", "customer_class", "service_address", "email",
                  "mobile", "language", "protections", "opt_out"]
BILL_HEADER = ["bill_id", "account_id", "bill_period", "amount_due", "due_date"]
PAYMENT_HEADER = ["payment_id", "account_id", "bill_id", "amount", "paid_at"]
EVENT_HEADER = ["event_id", "account_id", "event_type", "effective_date", "amount", "until_date", "note"]


def landing(folder: Path, accounts: list[list], bills: list[list], payments: list[list] | None = None,
            events: list[list] | None = None, encoding: str = "utf-8", bom: bool = False) -> Path:
    write_csv(folder / "accounts.csv", ACCOUNT_HEADER, accounts, encoding, bom)
    write_csv(folder / "open_items.csv", BILL_HEADER, bills, encoding, bom)
    if payments is not None:
        write_csv(folder / "payments.csv", PAYMENT_HEADER, payments, encoding, bom)
    if events is not None:
        write_csv(folder / "case_events.csv", EVENT_HEADER, events, encoding, bom)
    return folder


TZ = "Asia/Shanghai"


def at_local(day: date, hour: int = 9):
    """A clock fixed at ``hour`` o'clock on ``day`` in the utility's time zone."""
    from datetime import datetime, time
    from zoneinfo import ZoneInfo
    moment = datetime.combine(day, time(hour), tzinfo=ZoneInfo(TZ))
    return lambda: moment


def deliver(engine, outbox: Path, run, policy=POLICY, on: date | None = None, transports=None,
            window=None) -> dict:
    """The delivery half of a cycle: D's messages queued, sent at 09:00 local on ``on`` (default
    D) through ``transports`` (default the embedded file transports), and what was delivered
    recorded as service. Returns the dispatch summary with its ``service``."""
    from datetime import time

    from arrears.delivery.dispatch import dispatch
    from arrears.delivery.outbox import Attempt, queue_messages
    from arrears.delivery.transports import EmlFileTransport, SmsJsonlTransport, mail_domain, mail_from
    from arrears.records.service import Recorder, after_dispatch
    clock = at_local(on or run.cycle_date)
    queue_messages(engine, run, policy, mail_domain(None), clock())
    transports = transports or {"email": EmlFileTransport(outbox, mail_from(None)),
                                "sms": SmsJsonlTransport(outbox)}
    attempt = Attempt(run.run_id, "dispatch_messages", 1)
    result = dispatch(engine, transports, tz=TZ, window=window or (time(0), time.max),
                      attempt=attempt, dates=[run.cycle_date], clock=clock).as_dict()
    result["service"] = after_dispatch(engine, outbox, TZ, policy, Recorder(run.run_id, "dispatch_messages", 1), [run.cycle_date])
    return result


class DaemonicPool:
    """What a daemonic task process gets from multiprocessing: no child may start. Patched in
    for ``arrears.processes.ProcessPoolExecutor``."""

    def __init__(self, *args, **kw):
        pass

    def submit(self, *args, **kw):
        raise AssertionError("daemonic processes are not allowed to have children")

    def shutdown(self, *args, **kw):
        pass
