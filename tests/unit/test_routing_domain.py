"""services.routing.domain: who may take leads, round-robin choice, and the first-response deadline."""
import itertools
import random
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from services.common.errors import InvalidArgument
from services.routing.domain import Rep, RepStatus, choose_round_robin, first_response_due, validate_rep


def rep(rep_id="rep.one", name="Rep One", team="team-a", email="", status=RepStatus.ACTIVE) -> Rep:
    return Rep(rep_id=rep_id, name=name, team=team, email=email, status=status)


def violations(candidate, prefix="rep") -> dict:
    with pytest.raises(InvalidArgument) as raised:
        validate_rep(candidate, prefix)
    return {v.field: v.description for v in raised.value.violations}


# --- validate_rep ------------------------------------------------------------------------------------

def test_valid_rep_is_returned_with_name_trimmed_and_email_normalised():
    result = validate_rep(rep(name="  Wang Li  ", email=" Wang.Li@Acme.COM ", status=RepStatus.PAUSED))

    assert result == Rep("rep.one", "Wang Li", "team-a", "wang.li@acme.com", RepStatus.PAUSED)


def test_rep_without_email_is_fine():
    assert validate_rep(rep()).email == ""


@pytest.mark.parametrize("rep_id", ["a", "rep_1", "R.E-P", "x" * 64])
def test_good_rep_ids(rep_id):
    assert validate_rep(rep(rep_id=rep_id)).rep_id == rep_id


@pytest.mark.parametrize("rep_id", ["", "x" * 65, "rep one", "rep/1", "rép", "rep:1"])
def test_bad_rep_id_is_named(rep_id):
    assert list(violations(rep(rep_id=rep_id))) == ["rep.rep_id"]


@pytest.mark.parametrize("name, message", [("", "is required"), ("   ", "is required"),
                                           ("n" * 201, "must be at most 200 characters (got 201)")])
def test_bad_name_is_named(name, message):
    assert violations(rep(name=name)) == {"rep.name": message}


@pytest.mark.parametrize("team, message", [("", "is required"), (" ", "is required"),
                                           ("team a", "1-64 letters, digits, '.', '_' or '-'"),
                                           ("t" * 65, "1-64 letters, digits, '.', '_' or '-'")])
def test_bad_team_is_named(team, message):
    assert violations(rep(team=team)) == {"rep.team": message}


def test_bad_email_is_named():
    found = violations(rep(email="wang.li@"))

    assert list(found) == ["rep.email"]
    assert found["rep.email"].startswith("is not a valid email address")


def test_every_rep_violation_is_reported_at_once_under_the_prefix():
    found = violations(rep(rep_id="", name="", team="", email="nope"), prefix="reps[2]")

    assert set(found) == {"reps[2].rep_id", "reps[2].name", "reps[2].team", "reps[2].email"}


# --- choose_round_robin ------------------------------------------------------------------------------

REPS = [rep("carol"), rep("alice"), rep("dave"), rep("bob")]


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_round_robin_gives_every_rep_an_equal_share(count):
    candidates = REPS[:count]
    turns = 100 * count

    chosen = Counter(choose_round_robin(candidates, ticket)[0].rep_id for ticket in range(1, turns + 1))

    assert chosen == {r.rep_id: 100 for r in candidates}


def test_round_robin_takes_turns_without_repeating_a_rep_within_a_round():
    picks = [choose_round_robin(REPS, ticket)[0].rep_id for ticket in range(17, 17 + 4 * 5)]

    for start in range(0, len(picks), 4):
        assert sorted(picks[start:start + 4]) == ["alice", "bob", "carol", "dave"]
    assert all(a != b for a, b in itertools.pairwise(picks))


def test_round_robin_does_not_depend_on_the_order_candidates_arrive_in():
    """Replicas read the active reps in whatever order the store returns them."""
    shuffled = list(REPS)
    random.Random(7).shuffle(shuffled)
    reversed_ = list(reversed(REPS))

    for ticket in range(40):
        expected = choose_round_robin(REPS, ticket)[0].rep_id
        assert choose_round_robin(shuffled, ticket)[0].rep_id == expected
        assert choose_round_robin(reversed_, ticket)[0].rep_id == expected


def test_round_robin_reason_explains_the_turn():
    chosen, reason = choose_round_robin(REPS, 6)

    assert chosen.rep_id == "carol"  # sorted: alice, bob, carol, dave; 6 % 4 == 2
    assert "turn 6" in reason
    assert "among 4 active reps" in reason


def test_round_robin_does_not_reorder_the_callers_list():
    candidates = list(REPS)
    choose_round_robin(candidates, 3)

    assert candidates == REPS


# --- first_response_due ------------------------------------------------------------------------------

@pytest.mark.parametrize("minutes, due", [
    (0, datetime(2024, 5, 1, 23, 50, tzinfo=timezone.utc)),
    (15, datetime(2024, 5, 2, 0, 5, tzinfo=timezone.utc)),
    (24 * 60, datetime(2024, 5, 2, 23, 50, tzinfo=timezone.utc)),
])
def test_first_response_is_due_sla_minutes_after_assignment(minutes, due):
    assert first_response_due(datetime(2024, 5, 1, 23, 50, tzinfo=timezone.utc), minutes) == due


def test_first_response_due_keeps_the_instant_for_any_time_zone():
    assigned = datetime(2024, 5, 1, 9, 0, tzinfo=timezone(timedelta(hours=8)))

    assert first_response_due(assigned, 30) == datetime(2024, 5, 1, 1, 30, tzinfo=timezone.utc)


# --- who may see and change what ------------------------------------------------------------------------

def _principal(role: str, principal_id: str = "li.na", team: str = "team-a"):
    from services.common.auth import Principal, Role
    return Principal(principal_id, Role(role), team)


def test_managers_change_only_their_own_teams_reps_and_admins_any():
    from services.common.errors import PermissionDenied
    from services.routing.domain import ensure_may_change_rep
    rep = Rep(rep_id="wu.lei", name="Wu Lei", team="team-b")
    ensure_may_change_rep(_principal("admin"), rep)
    ensure_may_change_rep(_principal("manager", team="team-b"), rep)
    with pytest.raises(PermissionDenied):
        ensure_may_change_rep(_principal("manager", team="team-a"), rep)


def test_a_rep_sees_only_their_own_assignments_and_tasks():
    from services.common.errors import PermissionDenied
    from services.routing.domain import Assignment, ensure_may_see_assignment, task_owner_filter
    assignment = Assignment("L-1", "li.na", "team-a", "round_robin", "default@1", "turn 1")
    ensure_may_see_assignment(_principal("rep"), assignment)
    with pytest.raises(PermissionDenied):
        ensure_may_see_assignment(_principal("rep", principal_id="zhang.wei"), assignment)
    assert task_owner_filter(_principal("rep"), "") == "li.na"
    assert task_owner_filter(_principal("manager"), "") == ""
    assert task_owner_filter(_principal("manager"), "zhang.wei") == "zhang.wei"
    with pytest.raises(PermissionDenied):
        task_owner_filter(_principal("rep"), "zhang.wei")
