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
    SALES_QUALIFIED = "sales_qualified"
    CONVERTED = "converted"
    WON = "won"


FUNNEL_ORDER = tuple(Stage)

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


def stage_moves(event: dict) -> list[dict]:
    """The stage moves an opportunity event records: conversion enters the first stage, every stage
    change (closes and reopens included) leaves one stage for another."""
    if event.get("event_type") == "lead_converted" and event.get("stage_id") and event.get("converted_at"):
        return [{"from": "", "to": event["stage_id"], "at": parse_iso(event["converted_at"])}]
    if event.get("event_type") == "opportunity_stage_changed" and event.get("changed_at"):
        return [{"from": event.get("from_stage", ""), "to": event.get("to_stage", ""),
                 "at": parse_iso(event["changed_at"])}]
    return []


def opportunity_fact(event: dict) -> dict:
    """The opportunity read model's fields from one snapshot event; amount stays decimal text."""
    fact = {name: event.get(name) or "" for name in _FACT_TEXT}
    fact["status"] = fact["status"] or "open"
    fact["amount"] = event.get("amount") or None
    fact["probability"] = int(event.get("probability") or 0)
    fact["forecast_category"] = event.get("forecast_category") or ""
    fact["engaged_at"] = parse_iso(event["engaged_at"]) if event.get("engaged_at") else None
    fact["closed_at"] = parse_iso(event["closed_at"]) if event.get("closed_at") else None
    fact["version"] = int(event.get("version") or 1)
    return fact


def labels_of(event: dict) -> dict:
    """The lead's labels an event carries (its attribution, owner and team)."""
    labels = {}
    source = source_of(event)
    if source:
        labels["source"] = source
    if event.get("rep_id"):
        labels["rep_id"] = event["rep_id"]
    if event.get("team") and event["event_type"] in ("lead_assigned", "lead_reassigned"):
        labels["team"] = event["team"]
    if isinstance(event.get("lead"), dict):
        labels.update({k: v for k, v in attribution_of(event).items() if v and k != "source"})
    return labels


def project_lead(events: list) -> dict:
    """What the projections hold for one lead after all its (source service, event) pairs, folded in
    memory as the live projection writes them one by one: each moment the latest, the labels of the
    latest event that set them, the newest win probability, each opportunity's newest snapshot (the
    first of equal versions) and every stage move once. For a rebuild, which reads a lead's events
    together."""
    moments, labels, win, deals = {}, {}, None, {}
    for service, event in sorted(events, key=lambda pair: (parse_iso(pair[1]["occurred_at"]), pair[1]["event_id"])):
        event_type = event["event_type"]
        fields = PROJECTED_MOMENTS.get((service, event_type))
        if fields:
            for field, key in fields.items():
                at = parse_iso(event[key])
                if moments.get(field) is None or at > moments[field]:
                    moments[field] = at
            labels.update(labels_of(event))
        if event_type == "lead_scored" and event.get("win_probability") is not None:
            at = parse_iso(event["occurred_at"])
            if win is None or at > win[1]:
                win = (float(event["win_probability"]), at)
        if event_type in OPPORTUNITY_SNAPSHOT_EVENTS and event.get("opportunity_id"):
            deal = deals.setdefault(event["opportunity_id"], {"fact": None, "moves": []})
            fact = opportunity_fact(event)
            if deal["fact"] is None or fact["version"] > deal["fact"]["version"]:
                deal["fact"] = fact
            deal["moves"] += [move for move in stage_moves(event) if move not in deal["moves"]]
    return {"moments": moments, "labels": labels, "win": win, "deals": deals}


def stage_field(stage: Stage) -> str:
    return f"{stage.value}_at"


@dataclass(frozen=True)
class FunnelStep:
    stage: Stage
    leads: int
    conversion_from_previous: float
    dropped: int = 0  # leads of the previous stage that did not reach this one


def source_of(event: dict) -> str:
    if isinstance(event.get("lead"), dict):
        return event["lead"].get("source", "")
    return event.get("source", "")


def attribution_of(event: dict) -> dict:
    """The lead's source, medium and campaign, as its capture event carries them."""
    lead = event.get("lead") if isinstance(event.get("lead"), dict) else {}
    return {"source": source_of(event), "medium": lead.get("medium") or "", "campaign": lead.get("campaign") or ""}


def funnel(counts: dict) -> list[FunnelStep]:
    steps, previous = [], None
    for stage in FUNNEL_ORDER:
        leads = counts.get(stage, 0)
        if previous is None:
            conversion = 1.0
        else:
            conversion = leads / previous if previous else 0.0
        steps.append(FunnelStep(stage, leads, conversion, max(0, (previous or 0) - leads)))
        previous = leads
    return steps


# ---- the lead 360 timeline ------------------------------------------------------------------------

def _score(e):
    score = e.get("score") or {}
    return f"scored {score.get('total', '?')} (grade {score.get('grade') or '-'})"


def _owner(e):
    return e.get("rep_id") or e.get("owner_id") or "nobody"


SUMMARIES = {
    "lead_captured": lambda e: f"captured from {source_of(e) or 'an unknown source'}",
    "lead_merged": lambda e: "a new touch was merged into the lead",
    "lead_unmerged": lambda e: "split from the lead it had been merged into",
    "lead_activity_recorded": lambda e: f"behaviour: {e.get('type', 'activity')}",
    "lead_scored": _score,
    "lead_qualified": lambda e: f"marketing-qualified ({_score(e)})",
    "lead_disqualified": lambda e: "fell below the qualification threshold",
    "lead_assigned": lambda e: f"assigned to {_owner(e)}" + (f" by rule {e['rule_id']}" if e.get("rule_id") else ""),
    "lead_reassigned": lambda e: f"reassigned to {_owner(e)}" + (f": {e['reason']}" if e.get("reason") else ""),
    "task_created": lambda e: f"first response due {e.get('due_at', '')}",
    "task_completed": lambda e: "first response done" + (" within the SLA" if e.get("met_sla") else " late"),
    "sla_warning": lambda e: f"SLA warning for {_owner(e)}",
    "sla_breached": lambda e: f"SLA breached by {_owner(e)}",
    "lead_contacted": lambda e: f"first contact by {_owner(e)} ({e.get('activity_type', '')})",
    "activity_logged": lambda e: f"{e.get('activity_type', 'activity')} logged by {e.get('logged_by', '')}"
                                 + (f": {e['subject']}" if e.get("subject") else ""),
    "lead_sales_qualified": lambda e: f"sales-qualified by {e.get('qualified_by', '')}",
    "lead_sales_disqualified": lambda e: f"disqualified by sales: {e.get('reason', '')}",
    "lead_recycled": lambda e: f"recycled to nurture until {e.get('recycle_on', '')}",
    "lead_converted": lambda e: f"converted into an opportunity owned by {e.get('owner_id', '')}"
                                + (f" (handed off from {e.get('rep_id')})" if e.get("handed_off") else ""),
    "opportunity_stage_changed": lambda e: f"opportunity moved from {e.get('from_stage') or '-'} to "
                                           f"{e.get('to_stage', '')}",
    "opportunity_updated": lambda e: f"opportunity updated: {', '.join(e.get('changed') or [])}",
    "opportunity_won": lambda e: f"opportunity won ({e.get('amount') or '?'} {e.get('currency', '')})".strip(),
    "opportunity_lost": lambda e: f"opportunity lost: {e.get('lost_reason') or 'no reason given'}",
    "opportunity_imported": lambda e: f"opportunity imported ({e.get('status', '')}, {e.get('stage_id', '')})",
}


# Events stamped in the same millisecond (one transaction often emits two) are shown in the order in
# which one leads to the next.
CAUSAL_ORDER = {event_type: rank for rank, event_type in enumerate((
    "lead_captured", "lead_merged", "lead_unmerged", "lead_activity_recorded", "lead_scored", "lead_qualified",
    "lead_disqualified", "lead_assigned", "lead_reassigned", "task_created", "sla_warning", "sla_breached",
    "activity_logged", "lead_contacted", "task_completed", "lead_sales_qualified", "lead_sales_disqualified",
    "lead_recycled", "lead_converted", "opportunity_imported", "opportunity_updated", "opportunity_stage_changed",
    "opportunity_won", "opportunity_lost"))}


def timeline_order(event: dict) -> tuple:
    return parse_iso(event["occurred_at"]), CAUSAL_ORDER.get(event.get("event_type", ""), len(CAUSAL_ORDER))


def summary_of(event: dict) -> str:
    """What happened, in a sentence a sales manager reads on the lead's timeline."""
    describe = SUMMARIES.get(event.get("event_type", ""))
    return describe(event) if describe else event.get("event_type", "").replace("_", " ")
