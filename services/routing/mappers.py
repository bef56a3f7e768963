"""Routing: proto <-> domain <-> document."""
from leadflow.routing.v1 import routing_pb2

from services.common.mappers import to_timestamp
from services.routing.domain import Assignment, Rep, RepStatus, Task, TaskStatus
from services.routing.models import AssignmentDocument, RepDocument, TaskDocument

_REP_STATUS_TO_PROTO = {RepStatus.ACTIVE: routing_pb2.REP_STATUS_ACTIVE,
                        RepStatus.PAUSED: routing_pb2.REP_STATUS_PAUSED}
_TASK_STATUS_TO_PROTO = {TaskStatus.OPEN: routing_pb2.TASK_STATUS_OPEN,
                         TaskStatus.COMPLETED: routing_pb2.TASK_STATUS_COMPLETED}
TASK_STATUS_FROM_PROTO = {v: k for k, v in _TASK_STATUS_TO_PROTO.items()}


def rep_from_proto(message: routing_pb2.Rep) -> Rep:
    status = RepStatus.PAUSED if message.status == routing_pb2.REP_STATUS_PAUSED else RepStatus.ACTIVE
    return Rep(rep_id=message.rep_id, name=message.name, team=message.team, email=message.email, status=status)


def rep_to_proto(rep: Rep) -> routing_pb2.Rep:
    return routing_pb2.Rep(rep_id=rep.rep_id, name=rep.name, team=rep.team, email=rep.email,
                           status=_REP_STATUS_TO_PROTO[rep.status])


def rep_to_document(rep: Rep, updated_at) -> RepDocument:
    return RepDocument(id=rep.rep_id, name=rep.name, team=rep.team, email=rep.email, status=rep.status.value,
                       updated_at=updated_at)


def rep_from_document(document: RepDocument) -> Rep:
    return Rep(rep_id=document.id, name=document.name, team=document.team, email=document.email,
               status=RepStatus(document.status))


def task_to_document(task: Task) -> TaskDocument:
    return TaskDocument(id=task.task_id, lead_id=task.lead_id, rep_id=task.rep_id, kind=task.kind,
                        due_at=task.due_at, status=task.status.value, created_at=task.created_at)


def task_from_document(document: TaskDocument) -> Task:
    return Task(task_id=document.id, lead_id=document.lead_id, rep_id=document.rep_id, kind=document.kind,
                due_at=document.due_at, status=TaskStatus(document.status), created_at=document.created_at)


def task_to_proto(task: Task) -> routing_pb2.Task:
    return routing_pb2.Task(task_id=task.task_id, lead_id=task.lead_id, rep_id=task.rep_id, kind=task.kind,
                            due_at=to_timestamp(task.due_at), status=_TASK_STATUS_TO_PROTO[task.status],
                            created_at=to_timestamp(task.created_at))


def assignment_to_document(assignment: Assignment) -> AssignmentDocument:
    return AssignmentDocument(
        id=assignment.lead_id, rep_id=assignment.rep_id, team=assignment.team, strategy=assignment.strategy,
        policy_version=assignment.policy_version, reason=assignment.reason, candidates=assignment.candidates,
        lead_captured_at=assignment.lead_captured_at, assigned_at=assignment.assigned_at,
        task_id=assignment.task.task_id)


def assignment_from_document(document: AssignmentDocument, task: Task | None) -> Assignment:
    return Assignment(
        lead_id=document.id, rep_id=document.rep_id, team=document.team, strategy=document.strategy,
        policy_version=document.policy_version, reason=document.reason, candidates=list(document.candidates),
        lead_captured_at=document.lead_captured_at, assigned_at=document.assigned_at, task=task)


def assignment_to_proto(assignment: Assignment) -> routing_pb2.Assignment:
    return routing_pb2.Assignment(
        lead_id=assignment.lead_id, rep_id=assignment.rep_id, strategy=assignment.strategy,
        policy_version=assignment.policy_version, reason=assignment.reason, candidates=assignment.candidates,
        lead_captured_at=to_timestamp(assignment.lead_captured_at), assigned_at=to_timestamp(assignment.assigned_at),
        task=task_to_proto(assignment.task) if assignment.task else None)
