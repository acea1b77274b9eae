"""The supervisor's approval step: Airflow's ApprovalOperator that also keeps the answer.

On Reject the operator skips its downstream tasks and its return value is never pushed, so the
answer (who, when, which option) is pushed under its own XCom key before that happens: the step
that records rejections and timeouts reads it there.
"""
from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

ANSWER_KEY = "answer"


class SupervisorApproval(ApprovalOperator):
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
