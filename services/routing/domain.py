"""Routing's pure data: reps and teams as data, follow-up tasks, assignments with their history, and
who may see or change what. Rules and choices live in ``policy.py`` and ``decision.py``."""
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum

from email_validator import EmailNotValidError, validate_email

from services.common.auth import Principal, Role
from services.common.errors import InvalidArgument, PermissionDenied, Validator
from services.routing.calendar import WorkingCalendar, is_working_time, validate_calendar

REP_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SIZE_BAND = re.compile(r"^(\d{1,7})(?:-(\d{1,7})|\+)$")
MAX_LIST = 100
MAX_WEIGHT = 100
MAX_CAPACITY = 100_000


class RepStatus(str, Enum):
    ACTIVE = "active"
    PAUSED = "paused"


class RepRole(str, Enum):
    SDR = "sdr"
    AE = "ae"
    MANAGER = "manager"


class TaskStatus(str, Enum):
    OPEN = "open"
    COMPLETED = "completed"
    # Taken from the rep by escalation or a manager's reassignment; the next owner has a new task.
    REASSIGNED = "reassigned"


@dataclass(frozen=True)
class SizeBand:
    """A company-size range a rep covers, written "1-50" or "1000+"."""

    low: int
    high: int | None

    def covers(self, size: int) -> bool:
        return self.low <= size and (self.high is None or size <= self.high)

    def __str__(self):
        return f"{self.low}+" if self.high is None else f"{self.low}-{self.high}"


@dataclass
class Rep:
    rep_id: str
    name: str
    team: str
    email: str = ""
    status: RepStatus = RepStatus.ACTIVE
    role: RepRole = RepRole.SDR
    territories: list = field(default_factory=list)  # countries (ISO codes), regions or cities
    industries: list = field(default_factory=list)
    size_bands: list = field(default_factory=list)  # SizeBand
    languages: list = field(default_factory=list)
    skills: list = field(default_factory=list)
    weight: int = 1  # share of round-robin turns relative to the pool
    capacity: int = 0  # most open leads at once; 0 means no limit
    calendar: WorkingCalendar | None = None  # None: no working hours set, any time counts
    away_from: datetime | None = None  # out of office (UTC), inclusive
    away_until: datetime | None = None  # exclusive
    away_note: str = ""

    def is_away(self, now: datetime) -> bool:
        return self.away_from is not None and self.away_until is not None and self.away_from <= now < self.away_until

    def is_working(self, now: datetime) -> bool:
        return self.calendar is None or is_working_time(now, self.calendar)


@dataclass
class Team:
    team_id: str
    name: str
    managers: list = field(default_factory=list)  # rep ids told about escalations
    webhook_url: str = ""  # where the team's notifications are also posted


@dataclass
class Task:
    task_id: str
    lead_id: str
    rep_id: str
    kind: str
    due_at: datetime
    status: TaskStatus
    created_at: datetime
    warn_at: datetime | None = None
    warned_at: datetime | None = None
    breached_at: datetime | None = None
    completed_at: datetime | None = None
    completed_by: str = ""  # who or what stopped the clock: a rep id, or "lead_contacted"
    escalation_hop: int = 0  # 0 for the first owner; each escalation adds one


@dataclass(frozen=True)
class Considered:
    """One rep a decision looked at, and why they were passed over ("" when eligible)."""

    rep_id: str
    skipped: str = ""
    rule_id: str = ""


@dataclass(frozen=True)
class HistoryEntry:
    """One change of owner: the first assignment, an escalation, or a manager's reassignment."""

    kind: str  # "assigned", "escalated", "reassigned", "queued"
    rep_id: str  # "" when the lead went to the fallback queue
    at: datetime
    by: str  # "routing" or the manager's id
    reason: str
    rule_id: str = ""
    policy_version: str = ""


@dataclass
class Assignment:
    lead_id: str
    rep_id: str
    team: str
    strategy: str
    policy_version: str
    reason: str
    rule_id: str = ""
    candidates: list = field(default_factory=list)  # Considered, in the order the decision looked at them
    lead_captured_at: datetime | None = None
    assigned_at: datetime | None = None
    task: Task | None = None
    history: list = field(default_factory=list)  # HistoryEntry, oldest first
    owner_version: int = 1  # grows with each change of owner, so consumers apply changes in order
    account_key: str = ""
    first_touch_at: datetime | None = None

    @property
    def queued(self) -> bool:
        return not self.rep_id


def _listed(check: Validator, values, where: str, pattern=None, fold=str.lower) -> list:
    cleaned = []
    check.check(len(values) <= MAX_LIST, where, f"at most {MAX_LIST} entries")
    for index, value in enumerate(values):
        value = value.strip()
        if not check.check(bool(value) and len(value) <= 100, f"{where}[{index}]", "must be 1-100 characters"):
            continue
        if pattern is not None and not check.check(bool(pattern.match(value)), f"{where}[{index}]",
                                                   "1-64 letters, digits, '.', '_' or '-'"):
            continue
        folded = fold(value)
        if folded not in cleaned:
            cleaned.append(folded)
    return cleaned


def validate_rep(rep: Rep, hours: dict, holidays, time_zone: str, prefix: str = "rep") -> Rep:
    """Check a rep as an admin wrote it; every mistake is named by field. ``hours`` ("mon" ->
    "09:00-18:00") empty means the rep has no working hours set and any time counts."""
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
    roles = [role.value for role in RepRole]
    role = rep.role.value if isinstance(rep.role, RepRole) else str(rep.role).strip().lower()
    check.check(role in roles, f"{prefix}.role", f"must be one of {', '.join(roles)}")
    check.check(1 <= rep.weight <= MAX_WEIGHT, f"{prefix}.weight", f"must be between 1 and {MAX_WEIGHT}")
    check.check(0 <= rep.capacity <= MAX_CAPACITY, f"{prefix}.capacity",
                f"must be between 0 (no limit) and {MAX_CAPACITY}")
    bands = []
    for index, text in enumerate(rep.size_bands):
        match = SIZE_BAND.match(str(text).strip())
        where = f"{prefix}.size_bands[{index}]"
        if not check.check(match is not None, where, 'must be "LOW-HIGH" or "LOW+", e.g. "1-50" or "1000+"'):
            continue
        low, high = int(match.group(1)), int(match.group(2)) if match.group(2) else None
        if check.check(high is None or low <= high, where, "low must not be above high"):
            bands.append(SizeBand(low, high))
    territories = _listed(check, rep.territories, f"{prefix}.territories")
    industries = _listed(check, rep.industries, f"{prefix}.industries")
    languages = _listed(check, rep.languages, f"{prefix}.languages")
    skills = _listed(check, rep.skills, f"{prefix}.skills")
    if rep.away_from or rep.away_until:
        check.check(rep.away_from is not None and rep.away_until is not None and rep.away_from < rep.away_until,
                    f"{prefix}.away_until", "out of office needs both from and until, until after from")
    calendar = None
    if hours or holidays or time_zone:
        try:
            calendar = validate_calendar(time_zone or "UTC", hours, holidays, prefix=f"{prefix}.calendar")
        except InvalidArgument as error:  # merged with ours, so every mistake is named at once
            for violation in error.violations:
                check.check(False, violation.field, violation.description)
    check.raise_if_invalid()
    return replace(rep, name=rep.name.strip(), email=email, role=RepRole(role), territories=territories,
                   industries=industries, size_bands=bands, languages=languages, skills=skills, calendar=calendar,
                   away_note=rep.away_note.strip()[:500])


def validate_team(team: Team, prefix: str = "team") -> Team:
    check = Validator()
    check.check(bool(REP_ID.match(team.team_id)), f"{prefix}.team_id",
                "is required: 1-64 letters, digits, '.', '_' or '-'")
    if check.required(team.name.strip(), f"{prefix}.name"):
        check.max_length(team.name, 200, f"{prefix}.name")
    managers = _listed(check, team.managers, f"{prefix}.managers", pattern=REP_ID, fold=str)
    url = team.webhook_url.strip()
    if url:
        check.check(url.startswith(("https://", "http://")) and len(url) <= 2000, f"{prefix}.webhook_url",
                    "must be an http(s) URL of at most 2000 characters")
    check.raise_if_invalid()
    return replace(team, name=team.name.strip(), managers=managers, webhook_url=url)


def ensure_may_change_rep(principal: Principal, rep: Rep) -> None:
    """Admins change any rep; managers the reps of their own team."""
    if principal.role == Role.MANAGER and rep.team != principal.team:
        raise PermissionDenied(f"managers change reps of their own team ({principal.team}) only")


def ensure_may_set_availability(principal: Principal, rep: Rep) -> None:
    """A rep marks their own holiday; managers their team's; admins anyone's."""
    if principal.role == Role.REP and rep.rep_id != principal.id:
        raise PermissionDenied("reps set their own availability only")
    ensure_may_change_rep(principal, rep)


def ensure_may_see_assignment(principal: Principal, assignment: Assignment) -> None:
    if principal.role == Role.REP and assignment.rep_id != principal.id:
        raise PermissionDenied("reps see the assignments of their own leads only")


def ensure_may_reassign(principal: Principal, assignment: Assignment, target: Rep | None) -> None:
    """Managers move leads of their own team, to reps of their own team; admins move any lead."""
    if principal.role != Role.MANAGER:
        return
    if assignment.team and assignment.team != principal.team:
        raise PermissionDenied(f"managers reassign leads of their own team ({principal.team}) only")
    if target is not None and target.team != principal.team:
        raise PermissionDenied(f"managers reassign to reps of their own team ({principal.team}) only")


def ensure_may_complete(principal: Principal, task: Task) -> None:
    if principal.role == Role.REP and task.rep_id != principal.id:
        raise PermissionDenied("reps complete their own tasks only")


def task_owner_filter(principal: Principal, requested_rep_id: str) -> str:
    """Whose tasks a listing may show: a rep sees only their own, whatever they ask for."""
    if principal.role != Role.REP:
        return requested_rep_id
    if requested_rep_id and requested_rep_id != principal.id:
        raise PermissionDenied("reps see their own tasks only")
    return principal.id
