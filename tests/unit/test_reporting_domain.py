"""services.reporting.domain: funnel maths, attribution, and which event marks which stage."""
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from services.capture import events as capture_events
from services.capture.domain import Lead, touch_of
from services.common.events import make_event, parse_iso
from services.opportunity import events as opportunity_events
from services.opportunity.domain import Activity, ActivityType, LeadOwnership
from services.opportunity.models import OpportunityDocument
from services.reporting.domain import FUNNEL_ORDER, PROJECTED_MOMENTS, FunnelStep, Stage, funnel, source_of
from services.routing import events as routing_events
from services.routing.domain import Assignment, HistoryEntry, Task, TaskStatus
from services.scoring import events as scoring_events
from services.scoring.domain import builtin_model, score_lead

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def test_funnel_reports_every_stage_in_order_with_conversion_from_the_previous_one():
    steps = funnel({Stage.CAPTURED: 200, Stage.SCORED: 200, Stage.QUALIFIED: 50, Stage.ASSIGNED: 40,
                    Stage.CONTACTED: 10, Stage.SALES_QUALIFIED: 6, Stage.CONVERTED: 4, Stage.WON: 1})

    assert steps == [
        FunnelStep(Stage.CAPTURED, 200, 1.0, 0),
        FunnelStep(Stage.SCORED, 200, 1.0, 0),
        FunnelStep(Stage.QUALIFIED, 50, 0.25, 150),
        FunnelStep(Stage.ASSIGNED, 40, 0.8, 10),
        FunnelStep(Stage.CONTACTED, 10, 0.25, 30),
        FunnelStep(Stage.SALES_QUALIFIED, 6, 0.6, 4),
        FunnelStep(Stage.CONVERTED, 4, pytest.approx(2 / 3), 2),
        FunnelStep(Stage.WON, 1, 0.25, 3),
    ]


def test_stage_after_an_empty_stage_converts_at_zero_instead_of_failing():
    steps = funnel({Stage.CAPTURED: 10, Stage.SCORED: 10, Stage.QUALIFIED: 0, Stage.ASSIGNED: 0})

    assert [s.conversion_from_previous for s in steps] == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert [s.leads for s in steps] == [10, 10, 0, 0, 0, 0, 0, 0]


def test_empty_funnel_lists_every_stage_with_zero_leads():
    steps = funnel({})

    assert [s.stage for s in steps] == list(FUNNEL_ORDER)
    assert [s.leads for s in steps] == [0] * 8
    assert steps[0].conversion_from_previous == 1.0


def test_counts_keyed_by_stage_name_work_too():
    assert [s.leads for s in funnel({"captured": 4, "scored": 2})] == [4, 2, 0, 0, 0, 0, 0, 0]


def test_conversion_is_a_fraction_not_a_percentage():
    assert funnel({Stage.CAPTURED: 3, Stage.SCORED: 1})[1].conversion_from_previous == pytest.approx(1 / 3)


@pytest.mark.parametrize("event, source", [
    ({"lead": {"source": "web_form"}, "source": "ignored"}, "web_form"),
    ({"source": "referral"}, "referral"),
    ({"lead": {}}, ""),
    ({"lead": None, "source": "import"}, "import"),
    ({"lead": "L-1", "source": "import"}, "import"),
    ({}, ""),
])
def test_source_of_reads_the_lead_snapshot_or_the_flat_field(event, source):
    assert source_of(event) == source


# --- the events each service really emits carry what reporting reads ------------------------------------

def _emitted_events() -> dict:
    from services.capture.models import LeadActivityDocument

    lead = Lead(lead_id="L-1", captured_at=NOW, email="ann@acme.com", company_domain="acme.com",
                title="CEO", company_size=500, industry="software", source="demo_request")
    score = score_lead(lead.snapshot(), builtin_model(), NOW)
    task = Task("T-1", "L-1", "rep.one", "first_response", NOW, TaskStatus.OPEN, NOW)
    assignment = Assignment("L-1", "rep.one", "team-a", "round_robin", "default@1", "turn 1", assigned_at=NOW,
                            task=task)
    activity = Activity("A-1", "L-1", ActivityType.CALL, "", "", "", "rep.one", NOW, NOW)
    owner = LeadOwnership("L-1", "rep.one", "team-a")
    common = dict(id="opp-1", name="Acme", lead_id="L-1", account_id="acc-1", contact_id="con-1",
                  pipeline_id="new-business", owner_id="rep.one", team="team-a", created_at=NOW)
    opportunity = OpportunityDocument(**common, stage_id="discovery", status="open")
    won = OpportunityDocument(**common, stage_id="closed_won", status="won", closed_at=NOW)
    lost = OpportunityDocument(**common, stage_id="closed_lost", status="lost", lost_reason="price", closed_at=NOW)
    produced = {
        "capture": capture_events.lead_captured(lead),
        "capture-m": capture_events.lead_merged(lead, touch_of(lead, "crm-sync")),
        "capture-u": capture_events.lead_unmerged(lead, lead),
        "capture-a": capture_events.lead_activity_recorded(LeadActivityDocument(
            id="A-9", type="pricing_page_view", lead_id="L-1", occurred_at=NOW, recorded_at=NOW)),
        "scoring": scoring_events.lead_scored(score, {"source": "demo_request"}),
        "scoring-q": scoring_events.lead_qualified(score, {**lead.snapshot(), "source": "demo_request"}),
        "scoring-d": scoring_events.lead_disqualified(score, {**lead.snapshot(), "source": "demo_request"}),
        "routing": routing_events.lead_assigned(assignment, {"source": "demo_request"}),
        "routing-t": routing_events.task_created(task),
        "routing-r": routing_events.lead_reassigned(assignment, "rep.two", HistoryEntry(
            "escalated", "rep.one", NOW, "routing", "rep.two missed the deadline")),
        "routing-w": routing_events.sla_warning(replace(task, warned_at=NOW)),
        "routing-b": routing_events.sla_breached(replace(task, breached_at=NOW), "reassign"),
        "routing-c": routing_events.task_completed(replace(task, completed_at=NOW, completed_by="rep.one"), NOW,
                                                   True),
        "opportunity": opportunity_events.lead_contacted(activity, owner),
        "opportunity-c": opportunity_events.lead_converted(opportunity, "rep.one"),
        "opportunity-a": opportunity_events.activity_logged(activity, owner),
        **{f"opportunity-{outcome}": opportunity_events.verdict(
            "L-1", owner, {"outcome": outcome, "reason": "", "recycle_on": "", "answers": {}}, NOW, "rep.one")
           for outcome in ("qualified", "disqualified", "recycle")},
        "opportunity-s": opportunity_events.stage_changed(opportunity, "qualification", NOW, "rep.one"),
        "opportunity-w": opportunity_events.closed(won),
        "opportunity-l": opportunity_events.closed(lost),
    }
    return {(service.split("-")[0], event_type): make_event(event_type, subjects, snapshot)
            for service, (event_type, subjects, snapshot) in produced.items()}


def test_every_projected_event_carries_its_moments_and_lead_id():
    emitted = _emitted_events()

    assert set(emitted) == set(PROJECTED_MOMENTS)
    for key, moments in PROJECTED_MOMENTS.items():
        event = emitted[key]
        for moment_key in moments.values():
            moment = parse_iso(event[moment_key])
            assert moment.tzinfo is not None, key
            if moment_key != "occurred_at":  # the envelope's own time is "now"; the others are the domain's
                assert moment == NOW, key
        assert event["lead_id"] == "L-1", key


def test_every_funnel_stage_is_projected_from_some_event():
    projected_fields = {field for moments in PROJECTED_MOMENTS.values() for field in moments}
    assert {f"{stage.value}_at" for stage in FUNNEL_ORDER} <= projected_fields


@pytest.mark.parametrize("key", [("capture", "lead_captured"), ("scoring", "lead_scored"),
                                 ("scoring", "lead_qualified"), ("routing", "lead_assigned")])
def test_events_that_know_the_source_let_reporting_attribute_the_lead(key):
    assert source_of(_emitted_events()[key]) == "demo_request"


def test_timeline_orders_by_time_then_by_what_causes_what():
    from services.reporting.domain import summary_of, timeline_order
    same_moment = "2026-11-29T10:00:00.000000Z"
    events = [{"event_type": t, "occurred_at": same_moment} for t in ("task_created", "lead_assigned")]
    events.append({"event_type": "lead_captured", "occurred_at": "2026-11-29T10:00:00.001000Z"})

    assert [e["event_type"] for e in sorted(events, key=timeline_order)] == [
        "lead_assigned", "task_created", "lead_captured"]
    assert summary_of({"event_type": "lead_reassigned", "rep_id": "li.na", "reason": "speaks Cantonese"}) == \
        "reassigned to li.na: speaks Cantonese"
    assert summary_of({"event_type": "something_new"}) == "something new"
