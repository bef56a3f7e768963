"""Events routing emits."""
from services.common.events import iso

LEAD_ASSIGNED = "lead_assigned"
TASK_CREATED = "task_created"


def lead_assigned(assignment, lead: dict):
    return LEAD_ASSIGNED, {"lead_id": assignment.lead_id, "rep_id": assignment.rep_id}, {
        "team": assignment.team, "strategy": assignment.strategy, "policy_version": assignment.policy_version,
        "assigned_at": iso(assignment.assigned_at), "lead_captured_at": lead.get("captured_at", ""),
        "source": lead.get("source", ""), "task_id": assignment.task.task_id}


def task_created(task):
    return TASK_CREATED, {"task_id": task.task_id, "lead_id": task.lead_id, "rep_id": task.rep_id}, {
        "kind": task.kind, "due_at": iso(task.due_at), "created_at": iso(task.created_at)}
