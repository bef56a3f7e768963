"""Scoring models as data: validation that names each mistake, engagement with caps, repeat limits,
windows and decay (hand-computed), tag rules, grades, and when a score will change by time alone."""
from datetime import datetime, timedelta, timezone

import pytest

from services.common.errors import InvalidArgument
from services.scoring.domain import (BehaviourEvent, builtin_model, compile_model, effective_tags,
                                     newly_disqualified, remember, score_lead)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # a Monday
DAY = timedelta(days=1)


def model(**overrides) -> dict:
    base = {
        "threshold": 50,
        "groups": [
            {"id": "fit", "kind": "fit", "cap": 40, "criteria": [
                {"id": "industry", "points": 20, "when": {"field": "industry", "in": ["Software", "SaaS"]}},
                {"id": "size", "points": 25, "when": {"field": "company_size", "between": [100, 999]}},
                {"id": "vip", "points": 10, "when": {"field": "custom.tier", "equals": "gold"}},
                {"id": "competitor", "points": -30, "when": {"field": "email_domain", "in": ["rival.com"]}},
            ]},
            {"id": "web", "kind": "engagement", "cap": 30, "decay": {"percent": 50, "every_days": 7},
             "criteria": [
                 {"id": "pricing", "event": "pricing_page_view", "points": 4, "max_count": 3},
                 {"id": "demo", "event": "demo_request", "points": 15},
             ]},
            {"id": "email", "kind": "engagement", "decay": {"window_days": 30}, "criteria": [
                {"id": "open", "event": "email_open", "points": 1, "max_count": 5},
                {"id": "click", "event": "email_click", "points": 2, "within_days": 10},
            ]},
        ],
    }
    return {**base, **overrides}


def ago(days: float, kind: str, n: int = 0) -> BehaviourEvent:
    return BehaviourEvent(f"{kind}-{days}-{n}", kind, NOW - timedelta(days=days))


def score(behaviour=(), definition=None, **lead):
    compiled = compile_model(definition or model(), "test@1")
    return score_lead({"lead_id": "L", **lead}, compiled, NOW, list(behaviour))


def violations(definition) -> dict:
    with pytest.raises(InvalidArgument) as raised:
        compile_model(definition, "bad")
    return {v.field: v.description for v in raised.value.violations}


# ---- fit ---------------------------------------------------------------------------------------------

def test_fit_criteria_test_standard_custom_and_derived_fields_and_the_group_cap_holds():
    result = score(industry="software", company_size=250, custom_fields={"tier": "Gold"})
    assert [(r.rule_id, r.points) for r in result.reasons] == [("fit.industry", 20), ("fit.size", 25),
                                                               ("fit.vip", 10)]
    assert result.fit == 40  # 55 capped at the group's 40


def test_a_negative_criterion_takes_points_off_and_the_total_never_drops_below_zero():
    result = score(industry="saas", email="spy@Rival.com")
    assert (result.fit, result.total) == (20 - 30, 0)


# ---- engagement: repeat limits, decay, windows -------------------------------------------------------------

def test_repeat_limit_counts_only_the_newest_events():
    # Five pricing views today: only three count (max_count), 4 points each.
    result = score([ago(0.1, "pricing_page_view", n) for n in range(5)])
    [reason] = result.reasons
    assert (reason.rule_id, reason.count, reason.base_points, reason.points) == ("web.pricing", 3, 12, 12)


def test_percent_decay_halves_points_every_period_step_by_step():
    # demo 8 days ago: one 7-day step -> 15 * 0.5 = 7.5 -> 8 (half away from zero)
    # pricing 1, 15 and 22 days ago: 4 + 4*0.25 + 4*0.125 = 5.5 -> 6
    result = score([ago(8, "demo_request"), ago(1, "pricing_page_view"), ago(15, "pricing_page_view"),
                    ago(22, "pricing_page_view")])
    points = {r.rule_id: (r.base_points, r.points) for r in result.reasons}
    assert points == {"web.demo": (15, 8), "web.pricing": (12, 6)}
    assert result.engagement == 14
    assert result.decay_points == (15 - 8) + (12 - 6)


def test_a_rolling_window_drops_old_events_entirely():
    result = score([ago(29, "email_open"), ago(31, "email_open"), ago(9, "email_click"), ago(11, "email_click")])
    points = {r.rule_id: (r.count, r.points) for r in result.reasons}
    assert points == {"email.open": (1, 1), "email.click": (1, 2)}  # click's own window is 10 days


def test_engagement_group_cap_and_fit_plus_engagement_total():
    result = score([ago(0, "demo_request", n) for n in range(3)], industry="software")
    assert result.engagement == 30 and result.fit == 20 and result.total == 50 and result.qualified


def test_next_change_is_the_earliest_decay_step_or_window_exit():
    result = score([ago(3, "demo_request"), ago(25, "email_open")])
    # demo decays at day 7 (in 4 days); the open leaves the 30-day window in 5 days.
    assert result.next_change_at == NOW + 4 * DAY
    assert score([]).next_change_at is None


def test_scoring_later_with_no_new_event_lowers_the_score():
    compiled = compile_model(model(), "test@1")
    behaviour = [ago(0, "demo_request")]
    today = score_lead({"lead_id": "L"}, compiled, NOW, behaviour)
    later = score_lead({"lead_id": "L"}, compiled, today.next_change_at, behaviour)
    assert (today.engagement, later.engagement) == (15, 8)


def test_remember_ignores_an_event_it_already_has_and_keeps_the_newest():
    first = remember([], ago(1, "email_open"))
    assert remember(first, ago(1, "email_open")) is None
    assert [e.activity_id for e in remember(first, ago(0, "demo_request"))] == ["demo_request-0-0",
                                                                               "email_open-1-0"]


# ---- tags, grades, thresholds -------------------------------------------------------------------------------

TAGGED = model(tag_rules=[
    {"id": "hot", "tag": "intent:clear", "when": {"any": [{"event": "demo_request"},
                                                          {"field": "score.total", "gte": 45}]}},
    {"id": "price", "tag": "price-sensitive", "when": {"event": "pricing_page_view", "at_least": 3,
                                                       "within_days": 7}},
    {"id": "not-student", "tag": "student", "action": "remove", "when": {"field": "industry", "present": True}},
])


def test_tag_rules_add_and_remove_tags_and_can_read_the_score():
    result = score([ago(1, "pricing_page_view", n) for n in range(3)], definition=TAGGED,
                   industry="software", tags=["student", "vip"])
    assert result.tags_added == ["price-sensitive"] and result.tags_removed == ["student"]
    assert effective_tags({"tags": ["student", "vip"]}, result) == ["price-sensitive", "vip"]
    assert "intent:clear" in score([ago(1, "demo_request")], definition=TAGGED).tags_added


def test_event_windows_in_tag_rules_make_the_score_change_with_time():
    result = score([ago(1, "pricing_page_view", n) for n in range(3)], definition=TAGGED)
    assert result.next_change_at == NOW + 6 * DAY  # the pricing views leave the 7-day window


@pytest.mark.parametrize("fit_fields, behaviour, grade", [
    ({"industry": "software", "company_size": 200}, [ago(0, "demo_request", n) for n in range(2)], "A1"),
    ({"industry": "software"}, [ago(0, "demo_request")], "B2"),
    ({}, [], "D3"),
])
def test_grade_combines_fit_letter_and_engagement_digit(fit_fields, behaviour, grade):
    definition = model(grades={"fit": {"A": 40, "B": 20, "C": 10}, "engagement": {"1": 30, "2": 10}})
    assert score(behaviour, definition=definition, **fit_fields).grade == grade


def test_disqualification_is_announced_only_when_the_model_asks_for_it():
    quiet, loud = compile_model(model(), "a"), compile_model(model(emit_disqualified=True), "b")
    high = score_lead({"lead_id": "L", "industry": "software"}, quiet, NOW, [ago(0, "demo_request", n)
                                                                              for n in range(3)])
    low = score_lead({"lead_id": "L"}, quiet, NOW, [])
    assert high.qualified and not low.qualified
    assert not newly_disqualified(high, low, quiet) and newly_disqualified(high, low, loud)


def test_the_builtin_model_is_itself_a_valid_document_with_engagement_and_decay():
    builtin = builtin_model()
    assert builtin.version == "builtin" and {g.kind for g in builtin.groups} == {"fit", "engagement"}
    result = score_lead({"lead_id": "L"}, builtin, NOW, [ago(0, "demo_request"), ago(45, "trial_signup")])
    # 15 + 15 * 0.75 (one 30-day step of 25 %) = 26.25 -> 26
    assert result.engagement == 26 and "intent:clear" in result.tags_added


# ---- validation names the rule and the field ------------------------------------------------------------------

def test_every_mistake_is_named_with_its_path():
    bad = model(threshold=500, total_cap=100)
    bad["groups"][0]["criteria"][1]["points"] = "many"
    bad["groups"][0]["criteria"][2]["when"] = {"field": "industy", "in": ["x"]}
    bad["groups"][1]["criteria"][0]["event"] = "pricing_page_veiw"
    bad["groups"][1]["decay"] = {"percent": 150, "every_days": 7}
    bad["groups"][2]["criteria"].append({"id": "open", "event": "email_open", "points": 1})
    found = violations(bad)
    assert set(found) == {"threshold", "groups[0].criteria[1].points", "groups[0].criteria[2].when.field",
                          "groups[1].criteria[0].event", "groups[1].decay.percent", "groups[2].criteria[2].id"}
    assert "industy" in found["groups[0].criteria[2].when.field"]
    assert "defined twice" in found["groups[2].criteria[2].id"]


@pytest.mark.parametrize("when, path", [
    ({"field": "title", "matches": "(a+)+$"}, "groups[0].criteria[0].when.matches"),
    ({"field": "title", "matches": "(unclosed"}, "groups[0].criteria[0].when.matches"),
    ({"field": "company_size", "between": [10, 1]}, "groups[0].criteria[0].when.between"),
    ({"field": "title", "in": "CEO"}, "groups[0].criteria[0].when.in"),
    ({"field": "title"}, "groups[0].criteria[0].when"),
    ({"field": "score.total", "gte": 5}, "groups[0].criteria[0].when.field"),  # only tag rules see the score
    ({"all": []}, "groups[0].criteria[0].when.all"),
    ({"event": "demo_request", "at_least": 0}, "groups[0].criteria[0].when.at_least"),
    ({"nonsense": 1}, "groups[0].criteria[0].when"),
])
def test_bad_conditions_are_refused_with_their_path(when, path):
    definition = {"groups": [{"id": "fit", "kind": "fit", "criteria": [{"id": "x", "points": 5, "when": when}]}]}
    assert path in violations(definition)


def test_structural_mistakes():
    assert set(violations({"groups": []})) == {"groups"}
    assert set(violations({"groups": [{"id": "Fit!", "kind": "fitness", "criteria": []}], "colour": 1})) == {
        "groups[0].id", "groups[0].kind", "colour"}
    assert "groups[0].decay" in violations(
        {"groups": [{"id": "f", "kind": "fit", "decay": {"window_days": 3},
                     "criteria": [{"id": "x", "points": 1, "when": {"field": "title", "present": True}}]}]})
    assert "grades.fit" in violations({**model(), "grades": {"fit": {"A": 10, "B": 20, "C": 5}}})
