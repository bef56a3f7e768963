"""Events opportunity emits."""
from services.common.events import iso

LEAD_CONTACTED = "lead_contacted"
CONFIG_CHANGED = "config_changed"
LEAD_CONVERTED = "lead_converted"


def lead_contacted(activity, ownership):
    return LEAD_CONTACTED, {"lead_id": activity.lead_id, "rep_id": ownership.rep_id}, {
        "activity_id": activity.activity_id, "activity_type": activity.type.value,
        "contacted_at": iso(activity.occurred_at), "team": ownership.team}


def pipeline_changed(pipeline_id: str, version: int, changed_by: str):
    return CONFIG_CHANGED, {"config_id": f"Pipeline:{pipeline_id}"}, {
        "kind": "Pipeline", "version": f"{pipeline_id}@{version}", "changed_by": changed_by}


def lead_converted(opportunity, rep_id: str):
    """``rep_id`` is the lead's owner, whose desk the lead leaves (routing frees their capacity)."""
    return LEAD_CONVERTED, {"lead_id": opportunity.lead_id, "opportunity_id": opportunity.id}, {
        "rep_id": rep_id, "owner_id": opportunity.owner_id, "team": opportunity.team,
        "account_id": opportunity.account_id, "contact_id": opportunity.contact_id,
        "pipeline_id": opportunity.pipeline_id, "stage_id": opportunity.stage_id, "amount": opportunity.amount,
        "currency": opportunity.currency, "close_date": opportunity.close_date,
        "converted_at": iso(opportunity.created_at)}
