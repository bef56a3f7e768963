"""services.scoring.domain: the built-in model's fit rules, the 0..100 total, and when a lead becomes an MQL."""
import itertools
from datetime import datetime, timezone

import pytest

from services.scoring.domain import builtin_model, newly_qualified, score_lead

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
MODEL = builtin_model()


def lead(**fields) -> dict:
    """A lead as capture's snapshot describes it."""
    base = {"lead_id": "L-1", "email": "", "phone_e164": "", "title": "", "company_size": 0, "industry": "",
            "company_domain": "", "source": "web_form", "marketing_consent": False}
    return {**base, **fields}


def fired(score) -> set:
    return {reason.rule_id for reason in score.reasons}


def score(**fields):
    return score_lead(lead(**fields), MODEL, NOW)


def test_a_bare_lead_scores_zero_and_is_not_qualified():
    result = score()

    assert (result.fit, result.engagement, result.total, result.qualified) == (0, 0, 0, False)
    assert result.reasons == []
    assert (result.lead_id, result.model_version, result.threshold, result.scored_at) == \
        ("L-1", "builtin", 60, NOW)


@pytest.mark.parametrize("fields, rule, points", [
    ({"title": "CEO"}, "fit.decision_maker_title", 25),
    ({"title": "VP Marketing"}, "fit.decision_maker_title", 25),
    ({"title": "Head of Sales"}, "fit.decision_maker_title", 25),
    ({"title": "Co-Founder & CTO"}, "fit.decision_maker_title", 25),
    ({"title": "销售总监"}, "fit.decision_maker_title", 25),
    ({"company_size": 50}, "fit.company_size_50_plus", 15),
    ({"company_size": 499}, "fit.company_size_50_plus", 15),
    ({"company_size": 500}, "fit.company_size_500_plus", 25),
    ({"industry": "software"}, "fit.target_industry", 10),
    ({"company_domain": "acme.com"}, "fit.business_email", 15),
    ({"phone_e164": "+14155552671"}, "fit.reachable_by_phone", 10),
    ({"marketing_consent": True}, "fit.marketing_consent", 5),
    ({"source": "demo_request"}, "intent.high_intent_source", 20),
    ({"source": "referral"}, "intent.high_intent_source", 20),
])
def test_each_rule_fires_alone_with_its_points(fields, rule, points):
    result = score(**fields)

    assert fired(result) == {rule}
    assert result.total == points
    assert [r.points for r in result.reasons] == [points]
    assert result.reasons[0].description


@pytest.mark.parametrize("fields", [
    {"title": "Sales Representative"},
    {"title": "Headhunter"},
    {"company_size": 49},
    {"industry": "agriculture"},
    {"source": "web_form"},
    {"source": "google"},
    {"marketing_consent": False},
])
def test_rules_do_not_fire_on_near_misses(fields):
    assert fired(score(**fields)) == set()


def test_only_one_company_size_band_counts():
    assert fired(score(company_size=5000)) == {"fit.company_size_500_plus"}


def test_points_add_up():
    result = score(title="Director of IT", company_size=120, industry="software", company_domain="acme.com")

    assert result.total == result.fit == 25 + 15 + 10 + 15


def test_total_is_capped_at_100_but_every_reason_is_kept():
    result = score(title="CEO", company_size=1000, industry="saas", company_domain="acme.com",
                   phone_e164="+14155552671", marketing_consent=True, source="demo_request")

    assert result.fit == 110
    assert result.total == 100
    assert result.qualified
    assert len(result.reasons) == 7


@pytest.mark.parametrize("email", ["kim@mit.edu", "kim@unimelb.edu.au", "student123@uni.example.org"])
def test_student_email_takes_points_off(email):
    result = score(email=email, title="CEO")

    assert "fit.student_email" in fired(result)
    assert result.total == 5


def test_total_never_drops_below_zero():
    result = score(email="kim@mit.edu")

    assert result.fit == -20
    assert result.total == 0
    assert not result.qualified


def test_education_company_is_not_a_student():
    assert "fit.student_email" not in fired(score(email="kim@education.com"))


def test_qualified_exactly_at_the_threshold():
    at_60 = lead(title="CEO", company_size=500, industry="software")

    assert score_lead(at_60, MODEL, NOW).total == 60
    assert score_lead(at_60, MODEL, NOW).qualified
    below = score_lead(at_60, builtin_model(threshold=61), NOW)
    assert not below.qualified
    assert below.threshold == 61


@pytest.mark.parametrize("previous, current, expected", [
    (None, False, False),
    (None, True, True),
    (False, True, True),
    (True, True, False),
    (True, False, False),
    (False, False, False),
])
def test_newly_qualified_fires_only_when_crossing_the_threshold(previous, current, expected):
    def at(qualified):
        return score(title="CEO", company_size=500, industry="software" if qualified else "")

    before = None if previous is None else at(previous)

    assert newly_qualified(before, at(current)) is expected


def test_a_lead_that_drops_and_requalifies_is_announced_again():
    qualified = score(title="CEO", company_size=500, industry="software")
    dropped = score(title="CEO", company_size=500)
    history = [None, qualified, qualified, dropped, qualified, qualified]

    announcements = [newly_qualified(prev, cur) for prev, cur in itertools.pairwise(history)]

    assert announcements == [True, False, False, True, False]
