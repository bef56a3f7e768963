"""services.opportunity.pipeline: pipelines as data and what blocks leaving a stage."""
import pytest

from services.common.errors import InvalidArgument
from services.opportunity.pipeline import (BUILTIN_NEW_BUSINESS, LOST, WON, OpportunityFacts, compile_pipeline,
                                           missing_to_leave)

PIPELINE = compile_pipeline(BUILTIN_NEW_BUSINESS)


def facts(filled=(), activities=(), attachments=0) -> OpportunityFacts:
    return OpportunityFacts(frozenset(filled), frozenset(activities), attachments)


EVERYTHING = facts(("need", "budget", "decision_maker", "amount", "close_date"), ("call", "meeting"), 1)


def test_the_builtin_pipeline_compiles_with_rising_probabilities_and_forecast_categories():
    assert [(s.stage_id, s.probability, s.forecast) for s in PIPELINE.stages] == [
        ("qualification", 10, "pipeline"), ("discovery", 25, "pipeline"), ("proposal", 50, "best_case"),
        ("negotiation", 80, "commit")]
    assert "competitor" in PIPELINE.lost_reasons and not PIPELINE.allow_skip and PIPELINE.allow_backward


def test_leaving_a_stage_lists_exactly_what_is_missing():
    assert missing_to_leave(PIPELINE, "qualification", "discovery", facts(filled=("budget",))) == [
        "qualification: field need is empty", "qualification: no call logged"]
    assert missing_to_leave(PIPELINE, "proposal", "negotiation", facts()) == [
        "proposal: 1 more attachment(s) needed"]
    assert missing_to_leave(PIPELINE, "qualification", "discovery", EVERYTHING) == []


def test_skipping_needs_the_pipeline_to_allow_it_and_every_skipped_stages_criteria():
    blocked = missing_to_leave(PIPELINE, "qualification", "proposal", EVERYTHING)
    lenient = compile_pipeline({**BUILTIN_NEW_BUSINESS, "allow_skip": True})

    assert blocked == ["this pipeline does not skip stages: move through discovery"]
    assert missing_to_leave(lenient, "qualification", "proposal", facts(("need", "budget"), ("call",))) == [
        "discovery: field decision_maker is empty", "discovery: field amount is empty",
        "discovery: field close_date is empty", "discovery: no meeting logged"]


@pytest.mark.parametrize("current, target, given, blocked", [
    ("discovery", "qualification", facts(), []),  # back is allowed here, without criteria
    ("negotiation", LOST, facts(), []),  # losing is always possible from an open stage
    ("negotiation", WON, facts(), []),  # negotiation has no exit criteria
    ("proposal", WON, facts(), ["proposal: 1 more attachment(s) needed"]),
    (WON, "negotiation", facts(), ["the opportunity is closed won; reopen it first"]),
    ("proposal", "proposal", facts(), ["already in proposal"]),
])
def test_moves(current, target, given, blocked):
    lenient = compile_pipeline({**BUILTIN_NEW_BUSINESS, "allow_skip": True})
    assert missing_to_leave(lenient, current, target, given) == blocked


def test_a_pipeline_may_forbid_moving_back():
    strict = compile_pipeline({**BUILTIN_NEW_BUSINESS, "allow_backward": False})

    assert missing_to_leave(strict, "proposal", "discovery", facts()) == [
        "this pipeline does not move back from proposal to discovery"]


def test_closing_won_early_is_not_skipping_but_needs_the_current_stages_criteria():
    assert missing_to_leave(PIPELINE, "discovery", WON, facts(("decision_maker", "amount"), ("meeting",))) == [
        "discovery: field close_date is empty"]
    assert missing_to_leave(PIPELINE, "discovery", WON, EVERYTHING) == []


def test_every_mistake_in_a_pipeline_is_named_by_path():
    with pytest.raises(InvalidArgument) as raised:
        compile_pipeline({
            "id": "New Business", "name": "", "allow_skip": "no", "lost_reasons": [],
            "stages": [
                {"id": "a", "probability": 50, "forecast": "maybe"},
                {"id": "a", "probability": 40, "exit": {"fields": ["colour"], "activities": ["fax"],
                                                        "attachments": -1, "more": 1}},
                {"id": "closed_won", "probability": 101},
            ],
            "extra": 1,
        })

    assert {v.field for v in raised.value.violations} == {
        "id", "name", "allow_skip", "lost_reasons", "extra",
        "stages[0].forecast", "stages[1].id", "stages[1].probability", "stages[1].exit.fields[0]",
        "stages[1].exit.activities[0]", "stages[1].exit.attachments", "stages[1].exit.more",
        "stages[2].id", "stages[2].probability"}
