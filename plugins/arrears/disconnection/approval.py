"""The supervisor's approval step: Airflow's ApprovalOperator that also keeps the answer, asks
only the named approvers and tells them a batch waits.

On Reject the operator skips its downstream tasks and its return value is never pushed, so the
answer (who, when, which option) is pushed under its own XCom key before that happens: the step
that records rejections and timeouts reads it there.

The approvers (CONTRACT §8) are the Airflow users named in the ``arrears_approvers`` variable,
read when the batch is put to them (not when the DAG is parsed): a JSON object
``{"user.name": "mail@address", ...}``, or user names separated by commas (the notice then goes
to the ops address). They become the request's ``assigned_users``, so Airflow itself refuses an
answer from anybody else. Unset, any user allowed to answer the DAG's requests may approve.
"""
from __future__ import annotations

import html
import json
import logging
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from arrears.settings import SettingsError, get_variable

log = logging.getLogger(__name__)
ANSWER_KEY = "answer"
APPROVERS_VARIABLE = "arrears_approvers"


def approvers(value: str | None) -> dict[str, str]:
    """Airflow user name -> mail address ('' when the variable names no address)."""
    value = (value or "").strip()
    if not value:
        return {}
    if value.startswith(("{", "[")):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise SettingsError(f"{APPROVERS_VARIABLE} is not valid JSON: give "
                                '{"user.name": "mail@address"} or "user.a, user.b"') from None
        items = parsed.items() if isinstance(parsed, dict) else ((n, "") for n in parsed)
        out = {str(n).strip(): str(m or "").strip() for n, m in items}
    else:
        out = {n.strip(): "" for n in value.split(",")}
    out.pop("", None)
    return out


def request_mail(subject: str, body: str, link: str, names: list[str], deadline: str) -> tuple[str, str]:
    """The notice to the approvers: what waits, until when, and where to answer."""
    who = ", ".join(names) if names else "any user allowed to approve this DAG"
    return (f"[arrears] approval needed: {subject}",
            f"<p>A disconnection batch waits for approval: <b>{html.escape(subject)}</b>.</p>"
            f"<p><a href=\"{html.escape(link)}\">Open it on Airflow's Required Actions page</a> "
            f"({html.escape(link)}) and approve or reject it.</p>"
            f"<p>Who may answer: {html.escape(who)}. Without an answer by "
            f"{html.escape(deadline)} (UTC) it counts as rejected and nothing is released.</p>"
            f"<pre>{html.escape(body)}</pre>")


class SupervisorApproval(ApprovalOperator):
    def execute(self, context):
        named = approvers(get_variable(APPROVERS_VARIABLE))
        if named:
            self.assigned_users = [{"id": n, "name": n} for n in named]
        self.notifiers = [*self.notifiers, _ApproversMail(named)]
        return super().execute(context)

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        if "error" not in event:
            at = event.get("responded_at")
            context["ti"].xcom_push(key=ANSWER_KEY, value={
                "chosen_options": list(event.get("chosen_options") or []),
                "responded_by_user": event.get("responded_by_user"),
                "responded_at": at.isoformat() if hasattr(at, "isoformat") else str(at or ""),
                "timedout": bool(event.get("timedout")),
            })
        return super().execute_complete(context, event)


class _ApproversMail:
    """Called by the operator once the request is written: mails the approvers (or the ops
    address) through ``arrears_smtp``. A mail that cannot go out is logged; the request still
    waits on the Required Actions page."""

    def __init__(self, named: dict[str, str]):
        self.named = named

    def __call__(self, context) -> None:
        from airflow.configuration import conf

        from arrears.ops.alerts import SMTP_CONN_ID, OpsFailureNotifier, ops_address
        task = context["task"]
        base = conf.get("api", "base_url", fallback=None) or "http://localhost:8080"
        link = task.generate_link_to_ui_from_context(context=context, base_url=base)
        deadline = task.hitl_summary_extra.get("timeout_datetime") or "no deadline"
        subject, body = request_mail(task.subject, task.body or "", link, list(self.named), deadline)
        to = sorted({m or ops_address() for m in self.named.values()} or {ops_address()})
        notifier = OpsFailureNotifier(smtp_conn_id=SMTP_CONN_ID, to=to, subject=subject,
                                      html_content=body)
        try:
            notifier.notify(context)  # already rendered: no second templating of customer data
            log.info("approval request mailed to %s", ", ".join(to))
        except Exception:  # noqa: BLE001 - the request stands even when the mail does not go
            log.exception("approval request NOT mailed to %s: answer it on the Required Actions "
                          "page (%s)", ", ".join(to), link)
