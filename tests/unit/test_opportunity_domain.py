"""services.opportunity.domain: activity validation, who may log on a lead, what counts as contact."""
from datetime import datetime, timedelta, timezone

import pytest

from services.common.auth import Principal, Role
from services.common.errors import InvalidArgument, PermissionDenied
from services.opportunity.domain import (
    Activity,
    ActivityType,
    LeadOwnership,
    ensure_may_work_on,
    is_contact,
    validate_activity,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def validate(lead_id="L-1", activity_type=ActivityType.CALL, subject="Intro call", body="", outcome="",
             occurred_at=None, now=NOW):
    validate_activity(lead_id, activity_type, subject, body, outcome, occurred_at, now)


def violations(**fields) -> dict:
    with pytest.raises(InvalidArgument) as raised:
        validate(**fields)
    return {v.field: v.description for v in raised.value.violations}


# --- validate_activity ---------------------------------------------------------------------------------

@pytest.mark.parametrize("occurred_at", [
    None,
    NOW - timedelta(days=30),
    NOW,
    NOW + timedelta(seconds=59),
    NOW + timedelta(minutes=1),  # clock skew is tolerated up to a minute
])
def test_activity_in_the_past_or_within_clock_skew_is_accepted(occurred_at):
    validate(occurred_at=occurred_at)


@pytest.mark.parametrize("ahead", [timedelta(minutes=1, milliseconds=1), timedelta(minutes=5), timedelta(days=1)])
def test_activity_in_the_future_beyond_clock_skew_is_rejected(ahead):
    assert violations(occurred_at=NOW + ahead) == {"occurred_at": "must not be in the future"}


def test_future_check_compares_instants_not_wall_clocks():
    beijing = timezone(timedelta(hours=8))

    validate(occurred_at=datetime(2024, 5, 1, 19, 30, tzinfo=beijing))  # 11:30 UTC
    assert list(violations(occurred_at=datetime(2024, 5, 1, 20, 30, tzinfo=beijing))) == ["occurred_at"]


@pytest.mark.parametrize("activity_type", list(ActivityType))
def test_every_activity_type_is_accepted(activity_type):
    validate(activity_type=activity_type)


@pytest.mark.parametrize("field, limit", [("subject", 200), ("body", 10_000), ("outcome", 100)])
def test_text_lengths_are_limited(field, limit):
    validate(**{field: "x" * limit})

    assert violations(**{field: "x" * (limit + 1)}) == \
        {field: f"must be at most {limit} characters (got {limit + 1})"}


def test_every_activity_violation_is_reported_at_once():
    found = violations(lead_id="", activity_type=None, subject="s" * 201, body="b" * 10_001, outcome="o" * 101,
                       occurred_at=NOW + timedelta(hours=1))

    assert set(found) == {"lead_id", "type", "subject", "body", "outcome", "occurred_at"}
    assert found["lead_id"] == "is required"
    assert "call, email, meeting or note" in found["type"]


# --- ensure_may_work_on ------------------------------------------------------------------------------

OWNED = LeadOwnership(lead_id="L-1", rep_id="rep.one", team="team-a")


@pytest.mark.parametrize("principal", [
    Principal("rep.one", Role.REP, "team-a"),
    Principal("rep.one", Role.REP, "team-b"),         # the owner, even after moving team
    Principal("manager.wang", Role.MANAGER, "team-a"),
    Principal("admin", Role.ADMIN, "hq"),
    Principal("crm-sync", Role.INTEGRATION, "hq"),
])
def test_allowed_principals_may_work_on_the_lead(principal):
    ensure_may_work_on(principal, OWNED)


@pytest.mark.parametrize("principal, reason", [
    (Principal("rep.two", Role.REP, "team-a"), "another rep"),
    (Principal("rep.far", Role.REP, "team-b"), "another rep"),
    (Principal("manager.li", Role.MANAGER, "team-b"), "another team"),
])
def test_other_reps_and_other_teams_managers_may_not(principal, reason):
    with pytest.raises(PermissionDenied) as raised:
        ensure_may_work_on(principal, OWNED)

    assert "L-1" in str(raised.value)
    assert reason in str(raised.value)


# --- is_contact --------------------------------------------------------------------------------------

@pytest.mark.parametrize("activity_type, contact", [(ActivityType.CALL, True), (ActivityType.EMAIL, True),
                                                    (ActivityType.MEETING, True), (ActivityType.NOTE, False)])
def test_calls_emails_and_meetings_are_contact_notes_are_not(activity_type, contact):
    activity = Activity(activity_id="A-1", lead_id="L-1", type=activity_type, subject="", body="", outcome="",
                        logged_by="rep.one", occurred_at=NOW, logged_at=NOW)

    assert is_contact(activity) is contact
