"""services.routing.policy and services.routing.decision: the policy as data, and who gets a lead,
as tables of reps, policies and leads."""
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone

import pytest

from services.common.errors import InvalidArgument
from services.routing.calendar import WorkingCalendar
from services.routing.decision import (account_key, choose_smooth_weighted, deadline, decide, escalation_for,
                                       sla_times)
from services.routing.domain import Rep, RepStatus, SizeBand
from services.routing.policy import builtin_definition, compile_policy

MONDAY_10_UTC = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
SHANGHAI_9_TO_18 = WorkingCalendar("Asia/Shanghai", {d: (time(9), time(18)) for d in range(5)})
LEAD = {"lead_id": "L-1", "country": "DE", "region": "", "city": "Berlin", "industry": "software",
        "company_size": 250, "company": "Acme GmbH", "company_domain": "acme.de", "tags": ["channel:form"],
        "custom_fields": {"language": "de"}}
SCORE = {"total": 82, "fit": 50, "engagement": 32, "grade": "A1"}


def rep(rep_id, team="sales", **fields) -> Rep:
    return Rep(rep_id=rep_id, name=rep_id.title(), team=team, **fields)


def policy(*rules, **rest):
    return compile_policy({"rules": list(rules) or [{"id": "everyone"}], **rest}, "routing-policy@7")


def reps(*items) -> dict:
    return {r.rep_id: r for r in items}


def route(the_policy, the_reps, lead=LEAD, score=SCORE, open_leads=None, rotations=None, sticky="", now=MONDAY_10_UTC,
          excluded=()):
    return decide(lead, score, the_policy, the_reps, open_leads or {}, rotations or {}, sticky, now, excluded)


# --- the policy document --------------------------------------------------------------------------------

def test_the_builtin_policy_compiles_and_shares_leads_among_everyone():
    compiled = compile_policy(builtin_definition(120), "builtin")

    assert [r.rule_id for r in compiled.rules] == ["everyone"]
    assert (compiled.first_response_minutes, compiled.warning_percent, compiled.escalation, compiled.max_hops) == \
        (120, 75, "reassign", 2)


def test_every_mistake_in_a_policy_is_named_by_path_at_once():
    with pytest.raises(InvalidArgument) as raised:
        compile_policy({
            "rules": [
                {"id": "de", "when": {"field": "country", "in": "DE"}, "team": "dach", "strategy": "random"},
                {"id": "de", "reps": ["a b"], "team": "x", "match_rep": ["zodiac"], "working_hours": "yes"},
                {"id": "behaviour", "when": {"event": "demo_request"}, "then": "sticky", "sla_minutes": 0},
                {"id": "Bad Id", "when": {"field": "score.colour", "equals": 1}, "surprise": 1},
            ],
            "fallback": {"team": "sales desk"},
            "sla": {"first_response_minutes": 0, "warning_percent": 100, "holidays": ["2026-02-30"]},
            "escalation": {"action": "shout", "max_hops": 11},
            "extra": True,
        }, "candidate")

    assert {v.field for v in raised.value.violations} == {
        "rules[0].when.in", "rules[0].strategy",
        "rules[1].id", "rules[1].reps[0]", "rules[1].reps", "rules[1].match_rep[0]", "rules[1].working_hours",
        "rules[2].when.event", "rules[2].then", "rules[2].sla_minutes",
        "rules[3].id", "rules[3].when.field", "rules[3].surprise",
        "fallback.team", "sla.first_response_minutes", "sla.warning_percent", "sla.holidays[0]",
        "escalation.action", "escalation.max_hops", "extra"}


def test_a_policy_needs_rules():
    with pytest.raises(InvalidArgument) as raised:
        compile_policy({"rules": []}, "candidate")
    assert [v.field for v in raised.value.violations] == ["rules"]


# --- rules ------------------------------------------------------------------------------------------------

def test_the_first_matching_rule_with_an_available_rep_wins_and_the_decision_says_why():
    the_policy = policy(
        {"id": "big-dach", "when": {"all": [{"field": "country", "in": ["DE", "AT"]},
                                            {"field": "company_size", "gte": 1000}]}, "team": "enterprise"},
        {"id": "dach", "when": {"field": "country", "in": ["de", "at", "ch"]}, "team": "dach"},
        {"id": "rest", "team": "sales"})
    team = reps(rep("max", "dach"), rep("erika", "dach"), rep("ann", "enterprise"), rep("bo", "sales"))

    decision = route(the_policy, team)

    assert (decision.rep_id, decision.team, decision.rule_id, decision.strategy) == \
        ("erika", "dach", "dach", "weighted_round_robin")
    assert [c.rep_id for c in decision.considered] == ["erika", "max"]
    assert decision.reason.startswith("rule dach: next in weighted turns among 2 available reps")


@pytest.mark.parametrize("when, matched", [
    ({"field": "score.total", "gte": 80}, True),
    ({"field": "score.grade", "in": ["A1", "A2"]}, True),
    ({"field": "tags", "in": ["channel:form"]}, True),
    ({"field": "custom.language", "equals": "DE"}, True),
    ({"field": "source", "equals": "partner"}, False),
    ({"not": {"field": "industry", "in": ["software"]}}, False),
])
def test_rules_test_lead_fields_score_tags_and_custom_fields(when, matched):
    the_policy = policy({"id": "special", "when": when, "team": "special"}, {"id": "rest", "team": "sales"})
    team = reps(rep("sam", "special"), rep("bo", "sales"))

    assert route(the_policy, team).rule_id == ("special" if matched else "rest")


def test_a_rule_whose_reps_are_all_unavailable_overflows_to_the_next_matching_rule():
    the_policy = policy({"id": "dach", "team": "dach"}, {"id": "rest", "team": "sales"})
    team = reps(rep("max", "dach", status=RepStatus.PAUSED), rep("bo", "sales"))

    decision = route(the_policy, team)

    assert (decision.rep_id, decision.rule_id) == ("bo", "rest")
    assert decision.reason.endswith("(after dach had no available rep)")
    assert [(c.rep_id, c.skipped, c.rule_id) for c in decision.considered] == \
        [("max", "paused", "dach"), ("bo", "", "rest")]


def test_no_matching_rule_goes_to_the_fallback_team_then_the_fallback_queue():
    only_us = {"id": "us", "when": {"field": "country", "equals": "US"}, "team": "us"}
    team = reps(rep("desk.one", "desk"), rep("joe", "us"))

    with_fallback = route(policy(only_us, fallback={"team": "desk"}), team)
    without = route(policy(only_us), team)

    assert (with_fallback.rep_id, with_fallback.rule_id) == ("desk.one", "fallback")
    assert without.queued and without.rep_id == "" and without.reason == "fallback queue: no rule matched the lead"


def test_nobody_available_anywhere_queues_the_lead_naming_the_rules_tried():
    team = reps(rep("max", "dach", capacity=2), rep("desk.one", "desk", status=RepStatus.PAUSED))

    decision = route(policy({"id": "dach", "team": "dach"}, fallback={"team": "desk"}), team,
                     open_leads={"max": 2})

    assert decision.queued
    assert decision.reason == "fallback queue: no available rep under dach, fallback"
    assert [c.skipped for c in decision.considered] == ["at capacity (2/2 open leads)", "paused"]


def test_a_rule_may_name_its_reps_and_an_unknown_name_is_reported():
    decision = route(policy({"id": "vip", "reps": ["ghost", "li.na"]}), reps(rep("li.na"), rep("bo")))

    assert decision.rep_id == "li.na"
    assert [(c.rep_id, c.skipped) for c in decision.considered] == [("ghost", "not a rep"), ("li.na", "")]


# --- who is eligible ----------------------------------------------------------------------------------------

AWAY = dict(away_from=MONDAY_10_UTC - timedelta(days=1), away_until=MONDAY_10_UTC + timedelta(days=3),
            away_note="parental leave")


@pytest.mark.parametrize("fields, rule, open_leads, skipped", [
    ({"status": RepStatus.PAUSED}, {}, 0, "paused"),
    (AWAY, {}, 0, "out of office until 2026-12-03 10:00 UTC (parental leave)"),
    ({"capacity": 10}, {}, 10, "at capacity (10/10 open leads)"),
    ({"capacity": 10}, {}, 9, ""),
    ({"capacity": 0}, {}, 10_000, ""),  # no limit
    ({"calendar": SHANGHAI_9_TO_18}, {"working_hours": True}, 0, "outside working hours (Asia/Shanghai)"),
    ({"calendar": SHANGHAI_9_TO_18}, {}, 0, ""),  # the rule does not ask for working hours
    ({"territories": ["fr", "be"]}, {"match_rep": ["territory"]}, 0, "territory does not cover de/berlin"),
    ({"territories": ["berlin"]}, {"match_rep": ["territory"]}, 0, ""),
    ({"territories": []}, {"match_rep": ["territory"]}, 0, ""),  # covers everywhere
    ({"industries": ["retail"]}, {"match_rep": ["industry"]}, 0, "does not cover industry software"),
    ({"size_bands": [SizeBand(1, 50)]}, {"match_rep": ["company_size"]}, 0, "does not cover company size 250"),
    ({"size_bands": [SizeBand(201, 1000)]}, {"match_rep": ["company_size"]}, 0, ""),
    ({"languages": ["zh", "en"]}, {"match_rep": ["language"]}, 0, "does not speak de"),
    ({"skills": ["german"]}, {"skills": ["german", "saas"]}, 0, "lacks skill saas"),
    ({"territories": ["fr"]}, {}, 0, ""),  # attributes count only where the rule asks
])
def test_why_a_rep_is_passed_over(fields, rule, open_leads, skipped):
    decision = route(policy({"id": "r", **rule}), reps(rep("li.na", **fields)), open_leads={"li.na": open_leads})

    assert decision.considered[0].skipped == skipped
    assert decision.queued is bool(skipped)


def test_working_hours_follow_the_reps_time_zone():
    the_policy = policy({"id": "r", "working_hours": True})
    team = reps(rep("li.na", calendar=SHANGHAI_9_TO_18),
                rep("max", calendar=WorkingCalendar("Europe/Berlin", {d: (time(9), time(18)) for d in range(5)})))

    at_3_utc = route(the_policy, team, now=datetime(2026, 11, 30, 3, 0, tzinfo=timezone.utc))  # 11:00 Shanghai
    at_12_utc = route(the_policy, team, now=datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc))  # 13:00 Berlin

    assert at_3_utc.rep_id == "li.na" and at_12_utc.rep_id == "max"


def test_reps_who_already_had_the_lead_are_left_out_on_escalation():
    decision = route(policy(), reps(rep("a"), rep("b"), rep("c")), excluded={"a", "b"})

    assert decision.rep_id == "c"
    assert [c.skipped for c in decision.considered] == ["already had this lead", "already had this lead", ""]


# --- strategies ------------------------------------------------------------------------------------------------

def run_turns(the_policy, team, leads: int, open_leads=None):
    rotations, picks = {}, []
    for index in range(leads):
        decision = route(the_policy, team, lead={**LEAD, "lead_id": f"L-{index}"}, rotations=rotations,
                         open_leads=open_leads)
        rotations[decision.pool] = {**rotations.get(decision.pool, {}), **decision.rotation}
        picks.append(decision.rep_id)
    return picks


def test_weighted_round_robin_honours_weights_smoothly():
    picks = run_turns(policy(), reps(rep("a", weight=2), rep("b", weight=1), rep("c", weight=1)), 400)

    assert Counter(picks) == {"a": 200, "b": 100, "c": 100}
    assert picks[:4] == ["a", "b", "c", "a"]  # interleaved, never a burst of one rep
    assert max(len(list(run)) for run in _runs(picks)) <= 2


def _runs(picks):
    from itertools import groupby
    return [list(group) for _, group in groupby(picks)]


def test_equal_weights_take_strict_turns_whatever_order_the_reps_arrive_in():
    forward = run_turns(policy(), reps(rep("a"), rep("b"), rep("c")), 9)
    backward = run_turns(policy(), reps(rep("c"), rep("b"), rep("a")), 9)

    assert forward == backward == ["a", "b", "c"] * 3


def test_a_rep_back_from_holiday_rejoins_the_turns_without_a_burst():
    currents = {}
    team = [rep("a"), rep("b"), rep("c")]
    for _ in range(30):  # c is away: a and b alternate
        _, currents = _merge(choose_smooth_weighted(team[:2], currents), currents)
    picks = []
    for _ in range(9):
        chosen, currents = _merge(choose_smooth_weighted(team, currents), currents)
        picks.append(chosen.rep_id)

    assert Counter(picks) == {"a": 3, "b": 3, "c": 3}


def _merge(result, currents):
    chosen, updated = result
    return chosen, {**currents, **updated}


def test_least_loaded_picks_the_fewest_open_leads_for_the_weight_and_rotates_ties():
    the_policy = policy({"id": "r", "strategy": "least_loaded"})
    team = reps(rep("a", weight=2), rep("b"), rep("c"))

    decision = route(the_policy, team, open_leads={"a": 4, "b": 3, "c": 1})
    ties = run_turns(the_policy, team, 4, open_leads={"a": 2, "b": 1, "c": 1})

    assert decision.rep_id == "c" and decision.strategy == "least_loaded"
    assert "fewest open leads for their weight (1 open, weight 1)" in decision.reason
    assert Counter(ties) == {"a": 2, "b": 1, "c": 1}  # all tie at one lead per weight: weighted turns


def test_sticky_keeps_the_account_with_its_owner_and_falls_back_when_they_are_away():
    the_policy = policy({"id": "r", "strategy": "sticky", "then": "least_loaded"})
    team = reps(rep("owner"), rep("other"))
    away = reps(rep("owner", **AWAY), rep("other"))

    kept = route(the_policy, team, sticky="owner", open_leads={"owner": 50})
    fallen_back = route(the_policy, away, sticky="owner")
    new_account = route(the_policy, team, sticky="")

    assert (kept.rep_id, kept.strategy, kept.reason) == ("owner", "sticky", "rule r: owns this account already (owner)")
    assert (fallen_back.rep_id, fallen_back.strategy) == ("other", "least_loaded")
    assert fallen_back.reason.startswith("rule r: account owner owner cannot take it; fewest open leads")
    assert new_account.reason.startswith("rule r: a new account; ")


@pytest.mark.parametrize("lead, key", [
    ({"company_domain": "Acme.DE", "company": "Acme"}, "domain:acme.de"),
    ({"company_domain": "", "company": "  Acme   GmbH "}, "company:acme gmbh"),
    ({"email": "ann@gmail.com"}, ""),
])
def test_account_key(lead, key):
    assert account_key(lead) == key


# --- deadlines and escalation ---------------------------------------------------------------------------------

def test_a_rep_without_working_hours_gets_a_deadline_in_plain_minutes():
    the_policy = policy(sla={"first_response_minutes": 120, "warning_percent": 75})

    assert sla_times(MONDAY_10_UTC, rep("a"), the_policy, 120) == \
        (MONDAY_10_UTC + timedelta(minutes=90), MONDAY_10_UTC + timedelta(minutes=120))


def test_a_deadline_runs_on_the_reps_calendar_over_the_weekend_and_company_holidays():
    friday_17_shanghai = datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)
    the_policy = policy(sla={"holidays": ["2026-12-07"]})  # Monday off for everyone

    due = deadline(friday_17_shanghai, 120, rep("li.na", calendar=SHANGHAI_9_TO_18), the_policy)

    # One hour on Friday (17:00-18:00), the weekend and the Monday holiday skipped, one hour on Tuesday.
    assert due == datetime(2026, 12, 8, 2, 0, tzinfo=timezone.utc)  # Tuesday 10:00 in Shanghai
    assert SHANGHAI_9_TO_18.holidays == frozenset()  # the rep's own calendar is left as it was
    assert date(2026, 12, 7) in the_policy.holidays


def test_a_rule_sets_its_own_deadline():
    the_policy = policy({"id": "hot", "when": {"field": "score.total", "gte": 80}, "sla_minutes": 15},
                        {"id": "rest"}, sla={"first_response_minutes": 240})

    assert route(the_policy, reps(rep("a"))).sla_minutes == 15
    assert route(the_policy, reps(rep("a")), score={**SCORE, "total": 60}).sla_minutes == 240


@pytest.mark.parametrize("escalation, hops_so_far, action, hop", [
    ({"action": "reassign", "max_hops": 2}, 0, "reassign", 1),
    ({"action": "reassign", "max_hops": 2}, 1, "reassign", 2),
    ({"action": "reassign", "max_hops": 2}, 2, "queue", 2),
    ({"action": "reassign", "max_hops": 0}, 0, "queue", 0),
    ({"action": "notify_manager"}, 0, "notify_manager", 0),
])
def test_escalation_reassigns_up_to_the_hop_limit_then_queues(escalation, hops_so_far, action, hop):
    result = escalation_for(policy(escalation=escalation), hops_so_far)

    assert (result.action, result.hop) == (action, hop)
