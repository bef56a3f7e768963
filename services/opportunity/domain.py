"""Opportunity's pure logic for activities: what counts as contact, and who may log on a lead."""
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum

from services.common.auth import Principal, Role
from services.common.errors import PermissionDenied, Validator

MAX_SUBJECT = 200
MAX_BODY = 10_000
MAX_OUTCOME = 100
# Clocks drift; an activity a minute "in the future" is a skewed clock, not a mistake.
CLOCK_SKEW = timedelta(minutes=1)
MENTION = re.compile(r"(?<![\w.])@([A-Za-z0-9][A-Za-z0-9._-]{0,63})")
PRINCIPAL_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_LISTED = 20
COLLABORATOR_ROLES = ("presales", "product_expert", "executive_sponsor", "legal", "other")


class ActivityType(str, Enum):
    CALL = "call"
    EMAIL = "email"
    MEETING = "meeting"
    NOTE = "note"


CONTACT_TYPES = frozenset({ActivityType.CALL, ActivityType.EMAIL, ActivityType.MEETING})


@dataclass
class Activity:
    activity_id: str
    lead_id: str
    type: ActivityType
    subject: str
    body: str
    outcome: str
    logged_by: str
    occurred_at: datetime
    logged_at: datetime
    mentions: list = field(default_factory=list)
    participants: list = field(default_factory=list)
    next_step: str = ""


@dataclass
class LeadOwnership:
    lead_id: str
    rep_id: str
    team: str
    contacted_at: datetime | None = None
    qualification: dict | None = None  # sales' verdict on the lead, as QualifyLead recorded it


def validate_activity(lead_id: str, activity_type: ActivityType | None, subject: str, body: str, outcome: str,
                      occurred_at: datetime | None, now: datetime) -> None:
    check = Validator()
    check.required(lead_id, "lead_id")
    check.check(activity_type is not None, "type", "is required: call, email, meeting or note")
    check.max_length(subject, MAX_SUBJECT, "subject")
    check.max_length(body, MAX_BODY, "body")
    check.max_length(outcome, MAX_OUTCOME, "outcome")
    if occurred_at is not None:
        check.check(occurred_at <= now + CLOCK_SKEW, "occurred_at", "must not be in the future")
    check.raise_if_invalid()


def mentions_of(body: str, named: list) -> list[str]:
    """Colleagues to tell: those named explicitly and every ``@id`` in the body, once each, in order.
    An email address in the body (ann@acme.com) is not a mention."""
    check = Validator()
    for index, name in enumerate(named):
        check.check(bool(PRINCIPAL_ID.match(name)), f"mentions[{index}]", "1-64 letters, digits, '.', '_' or '-'")
    found = list(dict.fromkeys([*named, *(m.rstrip(".") for m in MENTION.findall(body))]))
    check.check(len(found) <= MAX_LISTED, "mentions", f"at most {MAX_LISTED} colleagues")
    check.raise_if_invalid()
    return found


def validate_participants(participants: list, next_step: str) -> list[str]:
    check = Validator()
    check.check(len(participants) <= MAX_LISTED, "participants", f"at most {MAX_LISTED} people")
    for index, person in enumerate(participants):
        check.check(0 < len(person.strip()) <= 200, f"participants[{index}]", "must be 1-200 characters")
    check.max_length(next_step, MAX_OUTCOME * 5, "next_step")
    check.raise_if_invalid()
    return [p.strip() for p in participants]


class Verdict(str, Enum):
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"
    RECYCLE = "recycle"


def validate_verdict(verdict: Verdict | None, answers: dict, reason: str, recycle_on: str, framework: tuple,
                     today: date) -> dict:
    """What QualifyLead records. Qualified needs every framework question answered; disqualified a
    reason; recycled a future date to look again."""
    check = Validator()
    check.check(verdict is not None, "outcome", "is required: qualified, disqualified or recycle")
    for key, value in answers.items():
        if check.check(key in framework, f"answers[{key}]",
                       f"not a question of the framework ({', '.join(framework)})"):
            check.max_length(value, 2000, f"answers[{key}]")
    if verdict == Verdict.QUALIFIED:
        for key in framework:
            check.check(bool(answers.get(key, "").strip()), f"answers[{key}]", "is required to qualify")
    if verdict == Verdict.DISQUALIFIED and check.required(reason.strip(), "reason"):
        check.max_length(reason, 500, "reason")
    day = None
    if verdict == Verdict.RECYCLE:
        try:
            day = date.fromisoformat(recycle_on)
            check.check(day > today, "recycle_on", "must be a future date")
        except ValueError:
            check.check(False, "recycle_on", "is required to recycle: a date, YYYY-MM-DD")
    check.raise_if_invalid()
    return {"outcome": verdict.value, "answers": {k: v.strip() for k, v in answers.items() if v.strip()},
            "reason": reason.strip(), "recycle_on": day.isoformat() if day else ""}


def validate_collaborator(user_id: str, role: str) -> None:
    check = Validator()
    check.check(bool(PRINCIPAL_ID.match(user_id)), "user_id", "is required: 1-64 letters, digits, '.', '_' or '-'")
    check.check(role in COLLABORATOR_ROLES, "role", f"must be one of {', '.join(COLLABORATOR_ROLES)}")
    check.raise_if_invalid()


def ensure_may_work_on(principal: Principal, ownership: LeadOwnership) -> None:
    """Reps work their own leads, managers their team's; admins and integrations any."""
    if principal.role == Role.REP and ownership.rep_id != principal.id:
        raise PermissionDenied(f"lead {ownership.lead_id} belongs to another rep")
    if principal.role == Role.MANAGER and ownership.team != principal.team:
        raise PermissionDenied(f"lead {ownership.lead_id} belongs to another team")


def ensure_may_see_opportunity(principal: Principal, owner_id: str, team: str, collaborators=()) -> None:
    """Reps see their own opportunities and those they collaborate on, managers their team's; admins
    and integrations any."""
    if principal.role == Role.REP and owner_id != principal.id and principal.id not in collaborators:
        raise PermissionDenied("this opportunity belongs to another rep")
    if principal.role == Role.MANAGER and team != principal.team:
        raise PermissionDenied("this opportunity belongs to another team")


def is_contact(activity: Activity) -> bool:
    return activity.type in CONTACT_TYPES
