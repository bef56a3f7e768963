"""Reporting's pure logic: which event moves a lead into which funnel stage, and the funnel maths."""
from dataclasses import dataclass
from enum import Enum


class Stage(str, Enum):
    CAPTURED = "captured"
    SCORED = "scored"
    QUALIFIED = "qualified"
    ASSIGNED = "assigned"
    CONTACTED = "contacted"


FUNNEL_ORDER = (Stage.CAPTURED, Stage.SCORED, Stage.QUALIFIED, Stage.ASSIGNED, Stage.CONTACTED)

# (source service, event type) -> stage reached, and the payload key that says when.
STAGE_BY_EVENT = {
    ("capture", "lead_captured"): (Stage.CAPTURED, "occurred_at"),
    ("scoring", "lead_scored"): (Stage.SCORED, "occurred_at"),
    ("scoring", "lead_qualified"): (Stage.QUALIFIED, "occurred_at"),
    ("routing", "lead_assigned"): (Stage.ASSIGNED, "assigned_at"),
    ("opportunity", "lead_contacted"): (Stage.CONTACTED, "contacted_at"),
}


@dataclass(frozen=True)
class FunnelStep:
    stage: Stage
    leads: int
    conversion_from_previous: float


def source_of(event: dict) -> str:
    if isinstance(event.get("lead"), dict):
        return event["lead"].get("source", "")
    return event.get("source", "")


def funnel(counts: dict) -> list[FunnelStep]:
    steps, previous = [], None
    for stage in FUNNEL_ORDER:
        leads = counts.get(stage, 0)
        if previous is None:
            conversion = 1.0
        else:
            conversion = leads / previous if previous else 0.0
        steps.append(FunnelStep(stage, leads, conversion))
        previous = leads
    return steps
