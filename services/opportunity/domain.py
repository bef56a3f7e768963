"""Opportunity's pure logic for activities: what counts as contact, and who may log on a lead."""
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from services.common.auth import Principal, Role
from services.common.errors import PermissionDenied, Validator

MAX_SUBJECT = 200
MAX_BODY = 10_000
MAX_OUTCOME = 100
# Clocks drift; an activity a minute "in the future" is a skewed clock, not a mistake.
CLOCK_SKEW = timedelta(minutes=1)


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


@dataclass
class LeadOwnership:
    lead_id: str
    rep_id: str
    team: str
    contacted_at: datetime | None = None


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


def ensure_may_work_on(principal: Principal, ownership: LeadOwnership) -> None:
    """Reps work their own leads, managers their team's; admins and integrations any."""
    if principal.role == Role.REP and ownership.rep_id != principal.id:
        raise PermissionDenied(f"lead {ownership.lead_id} belongs to another rep")
    if principal.role == Role.MANAGER and ownership.team != principal.team:
        raise PermissionDenied(f"lead {ownership.lead_id} belongs to another team")


def ensure_may_see_opportunity(principal: Principal, owner_id: str, team: str) -> None:
    """Reps see their own opportunities, managers their team's; admins and integrations any."""
    if principal.role == Role.REP and owner_id != principal.id:
        raise PermissionDenied("this opportunity belongs to another rep")
    if principal.role == Role.MANAGER and team != principal.team:
        raise PermissionDenied("this opportunity belongs to another team")


def is_contact(activity: Activity) -> bool:
    return activity.type in CONTACT_TYPES
