"""Events opportunity emits."""
from services.common.events import iso

LEAD_CONTACTED = "lead_contacted"
CONFIG_CHANGED = "config_changed"


def lead_contacted(activity, ownership):
    return LEAD_CONTACTED, {"lead_id": activity.lead_id, "rep_id": ownership.rep_id}, {
        "activity_id": activity.activity_id, "activity_type": activity.type.value,
        "contacted_at": iso(activity.occurred_at), "team": ownership.team}


def pipeline_changed(pipeline_id: str, version: int, changed_by: str):
    return CONFIG_CHANGED, {"config_id": f"Pipeline:{pipeline_id}"}, {
        "kind": "Pipeline", "version": f"{pipeline_id}@{version}", "changed_by": changed_by}
