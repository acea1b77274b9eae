"""The agents' lists of D (CONTRACT §3): ``call_list.csv`` (formal-notice accounts to phone) and
``field_visits.csv`` (escalation accounts for field staff), with script hints from
include/templates/agent_hints.toml.

The policy already leaves out accounts under a hold that forbids contact; the lists check it
again, because a call to a deceased customer's number is the one mistake an agent cannot undo.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from sqlalchemy import Engine

from arrears.batches.letters import amount
from arrears.outbox_files import write_file
from arrears.db.values import as_date, split_list
from arrears.spreadsheet import csv_bytes
from arrears.records.decided import Decided
from arrears.model import HOLDS, SERVED_NOTICES
from arrears.money import format_fen
from arrears.paths import TEMPLATES_DIR
from arrears.batches.plans import plan_statuses
from arrears.policy import Policy, load_policy
from arrears.policy.holds import STOPS_CONTACT
from arrears.policy.plans import PlanStatus
from arrears.policy.treatment import call_rank

CALL_COLUMNS = ("account_id", "holder_name", "mobile", "language", "stage", "dpd", "outstanding",
                "late_fee", "oldest_due_date", "script_hints", "plan_status", "segment")
OPT_OUT_HOLDS = tuple(h for h in HOLDS if h.startswith("opt_out_"))  # one per channel
VULNERABLE = frozenset({"low_income", "five_guarantee"})  # CONTRACT §1 protections
VISIT_COLUMNS = ("account_id", "holder_name", "service_address", "mobile", "language", "dpd",
                 "outstanding", "late_fee", "oldest_due_date", "visit_hints", "plan_status", "segment")


@lru_cache(maxsize=1)
def _hints():
    from jinja2 import Environment, StrictUndefined
    env = Environment(undefined=StrictUndefined)  # plain text in a CSV: nothing to escape
    raw = tomllib.loads((TEMPLATES_DIR / "agent_hints.toml").read_text(encoding="utf-8"))
    return {k: env.from_string(v) for k, v in raw.items()}


def hints(cycle_date: date, account_id: str, language: str, protections: frozenset[str],
          dpd: int, outstanding: int, late_fee: int, actions: frozenset[str],
          holds: frozenset[str], serve_in_person: frozenset[str], notice_pending: bool,
          oldest_due: date | None, segment: str = "new", late_fee_waived: bool = False) -> str:
    """What the agent should know, most important first, as a ';'-list."""
    values = {"outstanding": amount(outstanding), "late_fee": amount(late_fee), "dpd": dpd,
              "oldest_due": oldest_due.isoformat() if oldest_due else "-",
              "reference": f"LL-{cycle_date:%Y%m%d}-{account_id}"}
    codes = []
    if "protected_medical" in holds or "medical_device" in protections:
        codes.append("medical_device")
    if protections & VULNERABLE and segment != "hardship":  # the hardship hint says it all
        codes.append("vulnerable")
    if "protected_winter" in holds:
        codes.append("winter")
    if segment != "new":
        codes.append(f"segment_{segment}")
    if language == "en":
        codes.append("speak_english")
    codes += [h for h in OPT_OUT_HOLDS if h in holds]
    codes += [f"serve_{n}_in_person" for n in SERVED_NOTICES if n in serve_in_person]
    codes += [a for a in ("lawyer_letter", "disconnection_notice", "credit_report") if a in actions]
    if "disconnection_notice" not in actions and notice_pending:
        codes.append("disconnection_pending")
    codes += ["oldest_due", "late_fee_waived" if late_fee_waived else "late_fee"]
    if segment != "wilful":  # the strict path: no offer wording (CONTRACT §6)
        codes.append("payment_options")
    texts = _hints()
    # A channel without its own opt-out line gets the generic one, naming the channel.
    return "; ".join(texts[c].render(**values) if c in texts else
                     texts["opt_out_channel"].render(channel=c.removeprefix("opt_out_"), **values)
                     for c in codes)


def _rows(engine: Engine, cycle_date: date, action: str, plans: dict[str, PlanStatus],
          policy: Policy, decided: Decided | None = None):
    decided = decided or Decided(cycle_date)
    with engine.connect() as conn:
        rows = conn.execute(decided.sql("batches/agent_list.sql", conn.dialect.name),
                            decided.params(action=action)).all()
    # Priority: the segments in the policy's call_priority order, then the larger outstanding.
    rows.sort(key=lambda r: call_rank(r[15], r[8], r[0], policy))
    for (aid, holder, mobile, address, language, protections, stage, dpd, outstanding, fee,
         actions, holds, in_person, pending, oldest, segment, waived) in rows:
        held = split_list(holds)
        if held & STOPS_CONTACT:
            continue
        oldest = as_date(oldest)
        hint = hints(cycle_date, aid, language, split_list(protections), dpd, outstanding, fee,
                     split_list(actions), held, split_list(in_person), bool(pending), oldest,
                     segment, bool(waived))
        yield dict(account_id=aid, holder_name=holder, mobile=mobile, service_address=address,
                   language=language, stage=stage, dpd=dpd, outstanding=format_fen(outstanding),
                   late_fee=format_fen(fee), oldest_due_date=oldest.isoformat() if oldest else "",
                   hints=hint, plan_status=plans[aid].describe() if aid in plans else "",
                   segment=segment)


def list_rows(engine: Engine, cycle_date: date, action: str, policy: Policy) -> list[dict]:
    """D's call list (``call_list``) or field-visit list (``field_visit``) as the agents' page
    shows it: the same rows as the CSV files."""
    with engine.connect() as conn:
        plans = plan_statuses(conn, cycle_date, policy)
    return list(_rows(engine, cycle_date, action, plans, policy))


@dataclass
class AgentLists:
    calls: int
    visits: int


def write_agent_lists(engine: Engine, day_folder, cycle_date: date,
                      policy: Policy | None = None, decided: Decided | None = None) -> AgentLists:
    policy = policy or load_policy()
    with engine.connect() as conn:
        plans = plan_statuses(conn, cycle_date, policy)
    calls = [[r[c] if c != "script_hints" else r["hints"] for c in CALL_COLUMNS]
             for r in _rows(engine, cycle_date, "call_list", plans, policy, decided)]
    visits = [[r[c] if c != "visit_hints" else r["hints"] for c in VISIT_COLUMNS]
              for r in _rows(engine, cycle_date, "field_visit", plans, policy, decided)]
    day_folder.mkdir(parents=True, exist_ok=True)
    write_file(day_folder / "call_list.csv", csv_bytes(CALL_COLUMNS, calls))
    write_file(day_folder / "field_visits.csv", csv_bytes(VISIT_COLUMNS, visits))
    return AgentLists(len(calls), len(visits))
