"""Events routing emits. Every change of owner carries ``owner_version`` (1 for the first assignment,
one more per change) so consumers apply changes in order whichever queue delivers first."""
from services.common.events import iso

LEAD_ASSIGNED = "lead_assigned"
LEAD_REASSIGNED = "lead_reassigned"
TASK_CREATED = "task_created"
TASK_COMPLETED = "task_completed"
SLA_WARNING = "sla_warning"
SLA_BREACHED = "sla_breached"
NOTIFICATION_REQUESTED = "notification_requested"
CONFIG_CHANGED = "config_changed"


def lead_assigned(assignment, lead: dict):
    return LEAD_ASSIGNED, {"lead_id": assignment.lead_id, "rep_id": assignment.rep_id}, {
        "team": assignment.team, "strategy": assignment.strategy, "policy_version": assignment.policy_version,
        "rule_id": assignment.rule_id, "assigned_at": iso(assignment.assigned_at),
        "lead_captured_at": lead.get("captured_at", ""), "source": lead.get("source", ""),
        "task_id": assignment.task.task_id if assignment.task else "", "owner_version": assignment.owner_version}


def lead_reassigned(assignment, previous_rep_id: str, entry):
    """``rep_id`` is empty when the lead went to the fallback queue."""
    return LEAD_REASSIGNED, {"lead_id": assignment.lead_id}, {
        "rep_id": assignment.rep_id, "previous_rep_id": previous_rep_id, "team": assignment.team, "kind": entry.kind,
        "reason": entry.reason,
        "by": entry.by, "rule_id": entry.rule_id, "policy_version": entry.policy_version,
        "reassigned_at": iso(entry.at), "owner_version": assignment.owner_version,
        "task_id": assignment.task.task_id if assignment.task else "", "queued": assignment.queued}


def task_created(task):
    return TASK_CREATED, {"task_id": task.task_id, "lead_id": task.lead_id, "rep_id": task.rep_id}, {
        "kind": task.kind, "due_at": iso(task.due_at), "warn_at": iso(task.warn_at) if task.warn_at else "",
        "created_at": iso(task.created_at), "escalation_hop": task.escalation_hop}


def task_completed(task, assigned_at, first_touch: bool):
    """``first_touch_seconds``: from the lead's first assignment to this touch, for speed-to-lead."""
    seconds = (task.completed_at - assigned_at).total_seconds() if first_touch and assigned_at else None
    return TASK_COMPLETED, {"task_id": task.task_id, "lead_id": task.lead_id, "rep_id": task.rep_id}, {
        "kind": task.kind, "completed_at": iso(task.completed_at), "completed_by": task.completed_by,
        "due_at": iso(task.due_at), "met_sla": task.completed_at <= task.due_at,
        "first_touch": first_touch, "first_touch_seconds": seconds}


def sla_warning(task):
    return SLA_WARNING, {"task_id": task.task_id, "lead_id": task.lead_id, "rep_id": task.rep_id}, {
        "kind": task.kind, "due_at": iso(task.due_at), "warned_at": iso(task.warned_at)}


def sla_breached(task, escalation: str):
    return SLA_BREACHED, {"task_id": task.task_id, "lead_id": task.lead_id, "rep_id": task.rep_id}, {
        "kind": task.kind, "due_at": iso(task.due_at), "breached_at": iso(task.breached_at),
        "escalation": escalation, "escalation_hop": task.escalation_hop}


def notification_requested(kind: str, lead_id: str, recipients: list, message: str, team: str = "",
                           webhook_url: str = "", task_id: str = ""):
    """What a notifier sends: to whom (rep ids and emails), about what, in words."""
    return NOTIFICATION_REQUESTED, {"lead_id": lead_id}, {
        "kind": kind, "recipients": recipients, "message": message, "team": team, "webhook_url": webhook_url,
        "task_id": task_id}


def config_changed(version: str, changed_by: str):
    return CONFIG_CHANGED, {"config_id": "RoutingPolicy"}, {
        "kind": "RoutingPolicy", "version": version, "changed_by": changed_by}
