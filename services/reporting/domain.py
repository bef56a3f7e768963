"""Reporting's pure logic: which event moves a lead into which funnel stage, and the funnel maths."""
from dataclasses import dataclass
from enum import Enum

from services.common.events import parse_iso


class Stage(str, Enum):
    CAPTURED = "captured"
    SCORED = "scored"
    QUALIFIED = "qualified"
    ASSIGNED = "assigned"
    CONTACTED = "contacted"


FUNNEL_ORDER = (Stage.CAPTURED, Stage.SCORED, Stage.QUALIFIED, Stage.ASSIGNED, Stage.CONTACTED)

# Reporting projects every event the pipeline emits, and so gives each one a consumer queue (the
# outbox keeps an event until some queue is bound for it). Each event sets the moments it alone
# determines: (source service, event type) -> {progress field: payload key holding the moment}.
PROJECTED_MOMENTS = {
    ("capture", "lead_captured"): {"captured_at": "occurred_at"},
    ("capture", "lead_merged"): {"last_touch_at": "occurred_at"},
    ("capture", "lead_unmerged"): {"unmerged_at": "occurred_at"},
    ("capture", "lead_activity_recorded"): {"last_activity_at": "activity_occurred_at"},
    ("scoring", "lead_scored"): {"scored_at": "occurred_at"},
    ("scoring", "lead_qualified"): {"qualified_at": "occurred_at"},
    ("scoring", "lead_disqualified"): {"mql_lost_at": "occurred_at"},
    ("routing", "lead_assigned"): {"assigned_at": "assigned_at"},
    ("routing", "task_created"): {"first_response_due_at": "due_at"},
    ("routing", "lead_reassigned"): {"reassigned_at": "reassigned_at"},
    ("routing", "sla_warning"): {"sla_warned_at": "warned_at"},
    ("routing", "sla_breached"): {"sla_breached_at": "breached_at"},
    ("routing", "task_completed"): {"task_completed_at": "completed_at"},
    ("opportunity", "lead_contacted"): {"contacted_at": "contacted_at"},
    ("opportunity", "lead_converted"): {"converted_at": "converted_at"},
    ("opportunity", "activity_logged"): {"sales_activity_at": "occurred_at"},
    ("opportunity", "lead_sales_qualified"): {"sales_qualified_at": "qualified_at"},
    ("opportunity", "lead_sales_disqualified"): {"sales_disqualified_at": "qualified_at"},
    ("opportunity", "lead_recycled"): {"recycled_at": "qualified_at"},
    ("opportunity", "opportunity_stage_changed"): {"stage_changed_at": "changed_at"},
    ("opportunity", "opportunity_won"): {"won_at": "closed_at"},
    ("opportunity", "opportunity_lost"): {"lost_at": "closed_at"},
}


# Opportunity events carry the opportunity's whole snapshot; reporting keeps the newest per opportunity.
OPPORTUNITY_SNAPSHOT_EVENTS = frozenset({"lead_converted", "opportunity_stage_changed", "opportunity_won",
                                         "opportunity_lost", "opportunity_updated", "opportunity_imported"})
_FACT_TEXT = ("lead_id", "owner_id", "team", "manager_id", "office", "account_id", "account_name", "product",
              "pipeline_id", "stage_id", "status", "currency", "close_date", "lost_reason", "external_id")


def opportunity_fact(event: dict) -> dict:
    """The opportunity read model's fields from one snapshot event; amount stays decimal text."""
    fact = {name: event.get(name) or "" for name in _FACT_TEXT}
    fact["status"] = fact["status"] or "open"
    fact["amount"] = event.get("amount") or None
    fact["engaged_at"] = parse_iso(event["engaged_at"]) if event.get("engaged_at") else None
    fact["closed_at"] = parse_iso(event["closed_at"]) if event.get("closed_at") else None
    fact["version"] = int(event.get("version") or 1)
    return fact


def stage_field(stage: Stage) -> str:
    return f"{stage.value}_at"


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
