"""services.routing.domain: reps and teams as data, checked field by field, and who may do what."""
from datetime import datetime, time, timezone

import pytest

from services.common.auth import Principal, Role
from services.common.errors import InvalidArgument, PermissionDenied
from services.routing.domain import (Assignment, Rep, RepRole, RepStatus, SizeBand, Task, TaskStatus, Team,
                                     ensure_may_change_rep, ensure_may_complete, ensure_may_reassign,
                                     ensure_may_see_assignment, ensure_may_set_availability, task_owner_filter,
                                     validate_rep, validate_team)

NOW = datetime(2026, 11, 30, 9, 30, tzinfo=timezone.utc)


def rep(rep_id="rep.one", name="Rep One", team="team-a", **fields) -> Rep:
    return Rep(rep_id=rep_id, name=name, team=team, **fields)


def violations(candidate, hours=None, holidays=(), time_zone="", prefix="rep") -> dict:
    with pytest.raises(InvalidArgument) as raised:
        validate_rep(candidate, hours or {}, list(holidays), time_zone, prefix)
    return {v.field: v.description for v in raised.value.violations}


# --- validate_rep ------------------------------------------------------------------------------------

def test_valid_rep_is_returned_cleaned_up():
    result = validate_rep(rep(name="  Wang Li  ", email=" Wang.Li@Acme.COM ", status=RepStatus.PAUSED,
                              role="AE", territories=[" CN ", "cn", "Shanghai"], industries=["Software"],
                              size_bands=["1-50", "1000+"], languages=["zh", "EN"], skills=["german"], weight=3,
                              capacity=25),
                          {"mon": "09:00-18:00", "fri": "09:00-15:00"}, ["2026-10-01"], "Asia/Shanghai")

    assert (result.name, result.email, result.role, result.status) == \
        ("Wang Li", "wang.li@acme.com", RepRole.AE, RepStatus.PAUSED)
    assert result.territories == ["cn", "shanghai"]  # folded, duplicates dropped
    assert result.industries == ["software"] and result.languages == ["zh", "en"]
    assert result.size_bands == [SizeBand(1, 50), SizeBand(1000, None)]
    assert (result.weight, result.capacity) == (3, 25)
    assert result.calendar.time_zone == "Asia/Shanghai"
    assert result.calendar.hours == {0: (time(9), time(18)), 4: (time(9), time(15))}


def test_a_rep_without_working_hours_counts_every_minute():
    result = validate_rep(rep(), {}, [], "")

    assert result.calendar is None and result.is_working(NOW)


@pytest.mark.parametrize("rep_id", ["a", "rep_1", "R.E-P", "x" * 64])
def test_good_rep_ids(rep_id):
    assert validate_rep(rep(rep_id=rep_id), {}, [], "").rep_id == rep_id


@pytest.mark.parametrize("rep_id", ["", "x" * 65, "rep one", "rep/1", "rép", "rep:1"])
def test_bad_rep_id_is_named(rep_id):
    assert list(violations(rep(rep_id=rep_id))) == ["rep.rep_id"]


@pytest.mark.parametrize("fields, field, message", [
    ({"name": ""}, "rep.name", "is required"),
    ({"name": "n" * 201}, "rep.name", "must be at most 200 characters (got 201)"),
    ({"team": "team a"}, "rep.team", "1-64 letters, digits, '.', '_' or '-'"),
    ({"role": "ceo"}, "rep.role", "must be one of sdr, ae, manager"),
    ({"weight": 0}, "rep.weight", "must be between 1 and 100"),
    ({"weight": 101}, "rep.weight", "must be between 1 and 100"),
    ({"capacity": -1}, "rep.capacity", "must be between 0 (no limit) and 100000"),
    ({"size_bands": ["big"]}, "rep.size_bands[0]", 'must be "LOW-HIGH" or "LOW+", e.g. "1-50" or "1000+"'),
    ({"size_bands": ["1-50", "500-100"]}, "rep.size_bands[1]", "low must not be above high"),
    ({"territories": ["CN", " "]}, "rep.territories[1]", "must be 1-100 characters"),
    ({"away_from": NOW}, "rep.away_until", "out of office needs both from and until, until after from"),
    ({"away_from": NOW, "away_until": NOW}, "rep.away_until",
     "out of office needs both from and until, until after from"),
])
def test_each_bad_field_is_named(fields, field, message):
    assert violations(rep(**fields)) == {field: message}


def test_a_bad_calendar_is_named_with_the_rest_at_once():
    found = violations(rep(rep_id="", weight=0), {"mon": "18:00-09:00", "xyz": "09:00-10:00"}, ["2026-13-01"],
                       "Mars/Olympus", prefix="reps[2]")

    assert set(found) == {"reps[2].rep_id", "reps[2].weight", "reps[2].calendar.time_zone",
                          "reps[2].calendar.hours[mon]", "reps[2].calendar.hours[xyz]",
                          "reps[2].calendar.holidays[0]"}


def test_bad_email_is_named():
    found = violations(rep(email="wang.li@"))

    assert list(found) == ["rep.email"] and found["rep.email"].startswith("is not a valid email address")


def test_out_of_office_covers_from_inclusive_to_until_exclusive():
    away = rep(away_from=datetime(2026, 12, 1, tzinfo=timezone.utc),
               away_until=datetime(2026, 12, 8, tzinfo=timezone.utc))

    assert not away.is_away(datetime(2026, 11, 30, 23, 59, tzinfo=timezone.utc))
    assert away.is_away(datetime(2026, 12, 1, tzinfo=timezone.utc))
    assert not away.is_away(datetime(2026, 12, 8, tzinfo=timezone.utc))


@pytest.mark.parametrize("band, size, covered", [
    (SizeBand(1, 50), 1, True), (SizeBand(1, 50), 50, True), (SizeBand(1, 50), 51, False),
    (SizeBand(1000, None), 999, False), (SizeBand(1000, None), 250_000, True),
])
def test_size_bands(band, size, covered):
    assert band.covers(size) is covered


# --- validate_team --------------------------------------------------------------------------------------

def test_valid_team_keeps_its_managers_and_webhook():
    team = validate_team(Team("emea-sdr", " EMEA SDR ", ["li.na", "li.na", "max"], " https://hooks.example/x "))

    assert team == Team("emea-sdr", "EMEA SDR", ["li.na", "max"], "https://hooks.example/x")


def test_team_mistakes_are_named():
    with pytest.raises(InvalidArgument) as raised:
        validate_team(Team("emea sdr", "", ["bad id"], "ftp://x"))

    assert {v.field for v in raised.value.violations} == {"team.team_id", "team.name", "team.managers[0]",
                                                          "team.webhook_url"}


# --- who may see and change what ------------------------------------------------------------------------

def _principal(role: str, principal_id: str = "li.na", team: str = "team-a"):
    return Principal(principal_id, Role(role), team)


def test_managers_change_only_their_own_teams_reps_and_admins_any():
    other = rep(rep_id="wu.lei", team="team-b")
    ensure_may_change_rep(_principal("admin"), other)
    ensure_may_change_rep(_principal("manager", team="team-b"), other)
    with pytest.raises(PermissionDenied):
        ensure_may_change_rep(_principal("manager", team="team-a"), other)


def test_a_rep_sets_only_their_own_availability():
    ensure_may_set_availability(_principal("rep", "li.na"), rep(rep_id="li.na"))
    with pytest.raises(PermissionDenied):
        ensure_may_set_availability(_principal("rep", "li.na"), rep(rep_id="wu.lei"))
    with pytest.raises(PermissionDenied):
        ensure_may_set_availability(_principal("manager", team="team-b"), rep(rep_id="wu.lei", team="team-a"))


def test_managers_reassign_within_their_team_only():
    assignment = Assignment("L-1", "li.na", "team-a", "weighted_round_robin", "builtin", "turn")
    ensure_may_reassign(_principal("admin", team=""), assignment, rep(team="team-z"))
    ensure_may_reassign(_principal("manager"), assignment, rep(team="team-a"))
    with pytest.raises(PermissionDenied):
        ensure_may_reassign(_principal("manager"), assignment, rep(team="team-b"))
    with pytest.raises(PermissionDenied):
        ensure_may_reassign(_principal("manager", team="team-b"), assignment, None)


def test_a_rep_sees_and_completes_only_their_own_assignments_and_tasks():
    assignment = Assignment("L-1", "li.na", "team-a", "weighted_round_robin", "builtin", "turn")
    task = Task("T-1", "L-1", "li.na", "first_response", NOW, TaskStatus.OPEN, NOW)
    ensure_may_see_assignment(_principal("rep"), assignment)
    ensure_may_complete(_principal("rep"), task)
    with pytest.raises(PermissionDenied):
        ensure_may_see_assignment(_principal("rep", principal_id="zhang.wei"), assignment)
    with pytest.raises(PermissionDenied):
        ensure_may_complete(_principal("rep", principal_id="zhang.wei"), task)
    assert task_owner_filter(_principal("rep"), "") == "li.na"
    assert task_owner_filter(_principal("manager"), "zhang.wei") == "zhang.wei"
    with pytest.raises(PermissionDenied):
        task_owner_filter(_principal("rep"), "zhang.wei")
