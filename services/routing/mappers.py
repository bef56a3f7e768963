"""Routing: proto <-> domain <-> document."""
from leadflow.routing.v1 import routing_pb2

from services.common.mappers import from_timestamp, to_timestamp
from services.routing.calendar import validate_calendar
from services.routing.domain import (Assignment, Considered, HistoryEntry, Rep, RepRole, RepStatus, SizeBand, Task,
                                     TaskStatus, Team)
from services.routing.models import AssignmentDocument, RepDocument, TaskDocument, TeamDocument

REP_STATUS_TO_PROTO = {RepStatus.ACTIVE: routing_pb2.REP_STATUS_ACTIVE,
                       RepStatus.PAUSED: routing_pb2.REP_STATUS_PAUSED}
_TASK_STATUS_TO_PROTO = {TaskStatus.OPEN: routing_pb2.TASK_STATUS_OPEN,
                         TaskStatus.COMPLETED: routing_pb2.TASK_STATUS_COMPLETED,
                         TaskStatus.REASSIGNED: routing_pb2.TASK_STATUS_REASSIGNED}
TASK_STATUS_FROM_PROTO = {v: k for k, v in _TASK_STATUS_TO_PROTO.items()}
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def rep_status_from_proto(value) -> RepStatus:
    return RepStatus.PAUSED if value == routing_pb2.REP_STATUS_PAUSED else RepStatus.ACTIVE


def rep_from_proto(message: routing_pb2.Rep) -> tuple:
    """(rep, hours, holidays, time zone): the rep with its role and calendar as written, for
    ``validate_rep`` to check."""
    rep = Rep(rep_id=message.rep_id, name=message.name, team=message.team, email=message.email,
              status=rep_status_from_proto(message.status), role=message.role.strip().lower() or "sdr",
              territories=list(message.territories), industries=list(message.industries),
              size_bands=list(message.size_bands), languages=list(message.languages), skills=list(message.skills),
              weight=message.weight or 1, capacity=message.capacity,
              away_from=from_timestamp(message.away_from), away_until=from_timestamp(message.away_until),
              away_note=message.away_note)
    return rep, dict(message.working_hours), list(message.holidays), message.time_zone.strip()


def _hours_text(rep: Rep) -> dict:
    if rep.calendar is None:
        return {}
    return {WEEKDAY_NAMES[day]: f"{opening:%H:%M}-{closing:%H:%M}"
            for day, (opening, closing) in sorted(rep.calendar.hours.items())}


def _holidays_text(rep: Rep) -> list:
    return sorted(day.isoformat() for day in rep.calendar.holidays) if rep.calendar else []


def rep_to_proto(rep: Rep, open_leads: int = 0) -> routing_pb2.Rep:
    return routing_pb2.Rep(
        rep_id=rep.rep_id, name=rep.name, team=rep.team, email=rep.email, status=REP_STATUS_TO_PROTO[rep.status],
        role=rep.role.value, territories=rep.territories, industries=rep.industries,
        size_bands=[str(b) for b in rep.size_bands], languages=rep.languages, skills=rep.skills, weight=rep.weight,
        capacity=rep.capacity, time_zone=rep.calendar.time_zone if rep.calendar else "",
        working_hours=_hours_text(rep), holidays=_holidays_text(rep), away_from=to_timestamp(rep.away_from),
        away_until=to_timestamp(rep.away_until), away_note=rep.away_note, open_leads=open_leads)


def rep_to_document(rep: Rep, updated_at) -> RepDocument:
    return RepDocument(
        id=rep.rep_id, name=rep.name, team=rep.team, email=rep.email, status=rep.status.value, role=rep.role.value,
        territories=rep.territories, industries=rep.industries, size_bands=[str(b) for b in rep.size_bands],
        languages=rep.languages, skills=rep.skills, weight=rep.weight, capacity=rep.capacity,
        time_zone=rep.calendar.time_zone if rep.calendar else "", working_hours=_hours_text(rep),
        holidays=_holidays_text(rep), away_from=rep.away_from, away_until=rep.away_until, away_note=rep.away_note,
        updated_at=updated_at)


def rep_from_document(document: RepDocument) -> Rep:
    calendar = None  # stored calendars were validated on the way in
    if document.working_hours or document.holidays or document.time_zone:
        calendar = validate_calendar(document.time_zone or "UTC", dict(document.working_hours or {}),
                                     list(document.holidays or []))
    bands = []
    for text in document.size_bands or []:
        low, _, high = text.rstrip("+").partition("-")
        bands.append(SizeBand(int(low), int(high) if high else None))
    return Rep(rep_id=document.id, name=document.name, team=document.team, email=document.email,
               status=RepStatus(document.status), role=RepRole(document.role or "sdr"),
               territories=list(document.territories or []), industries=list(document.industries or []),
               size_bands=bands, languages=list(document.languages or []), skills=list(document.skills or []),
               weight=document.weight or 1, capacity=document.capacity or 0, calendar=calendar,
               away_from=document.away_from, away_until=document.away_until,
               away_note=document.away_note or "")


def team_from_proto(message: routing_pb2.Team) -> Team:
    return Team(team_id=message.team_id, name=message.name, managers=list(message.managers),
                webhook_url=message.webhook_url)


def team_to_proto(team: Team) -> routing_pb2.Team:
    return routing_pb2.Team(team_id=team.team_id, name=team.name, managers=team.managers,
                            webhook_url=team.webhook_url)


def team_to_document(team: Team, updated_at) -> TeamDocument:
    return TeamDocument(id=team.team_id, name=team.name, managers=team.managers, webhook_url=team.webhook_url,
                        updated_at=updated_at)


def team_from_document(document: TeamDocument) -> Team:
    return Team(team_id=document.id, name=document.name, managers=list(document.managers or []),
                webhook_url=document.webhook_url or "")


def task_to_document(task: Task) -> TaskDocument:
    return TaskDocument(id=task.task_id, lead_id=task.lead_id, rep_id=task.rep_id, kind=task.kind,
                        due_at=task.due_at, warn_at=task.warn_at, status=task.status.value,
                        created_at=task.created_at, escalation_hop=task.escalation_hop,
                        next_check_at=task.warn_at or task.due_at)


def task_from_document(document: TaskDocument) -> Task:
    return Task(task_id=document.id, lead_id=document.lead_id, rep_id=document.rep_id, kind=document.kind,
                due_at=document.due_at, status=TaskStatus(document.status),
                created_at=document.created_at, warn_at=document.warn_at,
                warned_at=document.warned_at, breached_at=document.breached_at,
                completed_at=document.completed_at, completed_by=document.completed_by or "",
                escalation_hop=document.escalation_hop or 0)


def task_to_proto(task: Task) -> routing_pb2.Task:
    return routing_pb2.Task(
        task_id=task.task_id, lead_id=task.lead_id, rep_id=task.rep_id, kind=task.kind,
        due_at=to_timestamp(task.due_at), status=_TASK_STATUS_TO_PROTO[task.status],
        created_at=to_timestamp(task.created_at), warn_at=to_timestamp(task.warn_at),
        warned_at=to_timestamp(task.warned_at), breached_at=to_timestamp(task.breached_at),
        completed_at=to_timestamp(task.completed_at), completed_by=task.completed_by,
        escalation_hop=task.escalation_hop)


def considered_to_dicts(considered) -> list:
    return [{"rep_id": c.rep_id, "skipped": c.skipped, "rule_id": c.rule_id} for c in considered]


def history_to_dict(entry: HistoryEntry) -> dict:
    return {"kind": entry.kind, "rep_id": entry.rep_id, "at": entry.at, "by": entry.by, "reason": entry.reason,
            "rule_id": entry.rule_id, "policy_version": entry.policy_version}


def assignment_from_document(document: AssignmentDocument, task: Task | None) -> Assignment:
    return Assignment(
        lead_id=document.id, rep_id=document.rep_id or "", team=document.team or "",
        strategy=document.strategy or "", policy_version=document.policy_version, reason=document.reason or "",
        rule_id=document.rule_id or "",
        candidates=[Considered(c.get("rep_id", ""), c.get("skipped", ""), c.get("rule_id", ""))
                    for c in document.considered or []],
        lead_captured_at=document.lead_captured_at, assigned_at=document.assigned_at, task=task,
        history=[HistoryEntry(h.get("kind", ""), h.get("rep_id", ""), h.get("at"), h.get("by", ""),
                              h.get("reason", ""), h.get("rule_id", ""), h.get("policy_version", ""))
                 for h in document.history or []],
        owner_version=document.owner_version or 1, account_key=document.account_key or "",
        first_touch_at=document.first_touch_at)


def assignment_to_proto(assignment: Assignment) -> routing_pb2.Assignment:
    return routing_pb2.Assignment(
        lead_id=assignment.lead_id, rep_id=assignment.rep_id, strategy=assignment.strategy,
        policy_version=assignment.policy_version, reason=assignment.reason,
        candidates=list(dict.fromkeys(c.rep_id for c in assignment.candidates)),
        lead_captured_at=to_timestamp(assignment.lead_captured_at), assigned_at=to_timestamp(assignment.assigned_at),
        task=task_to_proto(assignment.task) if assignment.task else None, rule_id=assignment.rule_id,
        considered=[routing_pb2.Candidate(rep_id=c.rep_id, skipped_reason=c.skipped, rule_id=c.rule_id)
                    for c in assignment.candidates],
        history=[routing_pb2.OwnerChange(kind=h.kind, rep_id=h.rep_id, at=to_timestamp(h.at), by=h.by,
                                         reason=h.reason, rule_id=h.rule_id, policy_version=h.policy_version)
                 for h in assignment.history],
        team=assignment.team, queued=assignment.queued, first_touch_at=to_timestamp(assignment.first_touch_at))
