"""Routing's pure logic: who may take leads, round-robin choice, and the first-response deadline."""
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from email_validator import EmailNotValidError, validate_email

from services.common.auth import Principal, Role
from services.common.errors import PermissionDenied, Validator

REP_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
POLICY_VERSION = "default@1"
ROUND_ROBIN = "round_robin"


class RepStatus(str, Enum):
    ACTIVE = "active"
    PAUSED = "paused"


class TaskStatus(str, Enum):
    OPEN = "open"
    COMPLETED = "completed"


@dataclass
class Rep:
    rep_id: str
    name: str
    team: str
    email: str = ""
    status: RepStatus = RepStatus.ACTIVE


@dataclass
class Task:
    task_id: str
    lead_id: str
    rep_id: str
    kind: str
    due_at: datetime
    status: TaskStatus
    created_at: datetime


@dataclass
class Assignment:
    lead_id: str
    rep_id: str
    team: str
    strategy: str
    policy_version: str
    reason: str
    candidates: list = field(default_factory=list)
    lead_captured_at: datetime | None = None
    assigned_at: datetime | None = None
    task: Task | None = None


def validate_rep(rep: Rep, prefix: str = "rep") -> Rep:
    check = Validator()
    check.check(bool(REP_ID.match(rep.rep_id)), f"{prefix}.rep_id",
                "is required: 1-64 letters, digits, '.', '_' or '-'")
    if check.required(rep.name.strip(), f"{prefix}.name"):
        check.max_length(rep.name, 200, f"{prefix}.name")
    if check.required(rep.team.strip(), f"{prefix}.team"):
        check.check(bool(REP_ID.match(rep.team)), f"{prefix}.team", "1-64 letters, digits, '.', '_' or '-'")
    email = rep.email.strip()
    if email:
        try:
            email = validate_email(email, check_deliverability=False).normalized.lower()
        except EmailNotValidError as exc:
            check.check(False, f"{prefix}.email", f"is not a valid email address: {exc}")
    check.raise_if_invalid()
    return Rep(rep_id=rep.rep_id, name=rep.name.strip(), team=rep.team, email=email, status=rep.status)


def choose_round_robin(candidates: list[Rep], ticket: int) -> tuple[Rep, str]:
    """The ticket is a shared, atomically incremented counter, so replicas take turns fairly."""
    ordered = sorted(candidates, key=lambda rep: rep.rep_id)
    rep = ordered[ticket % len(ordered)]
    return rep, f"next in the round-robin rotation (turn {ticket}) among {len(ordered)} active reps"


def first_response_due(assigned_at: datetime, sla_minutes: int) -> datetime:
    return assigned_at + timedelta(minutes=sla_minutes)


def ensure_may_change_rep(principal: Principal, rep: Rep) -> None:
    """Admins change any rep; managers the reps of their own team."""
    if principal.role == Role.MANAGER and rep.team != principal.team:
        raise PermissionDenied(f"managers change reps of their own team ({principal.team}) only")


def ensure_may_see_assignment(principal: Principal, assignment: Assignment) -> None:
    if principal.role == Role.REP and assignment.rep_id != principal.id:
        raise PermissionDenied("reps see the assignments of their own leads only")


def task_owner_filter(principal: Principal, requested_rep_id: str) -> str:
    """Whose tasks a listing may show: a rep sees only their own, whatever they ask for."""
    if principal.role != Role.REP:
        return requested_rep_id
    if requested_rep_id and requested_rep_id != principal.id:
        raise PermissionDenied("reps see their own tasks only")
    return principal.id
