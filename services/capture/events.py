"""Events capture emits. Each carries the lead snapshot later services need, so none calls back."""
from services.common.events import iso

LEAD_CAPTURED = "lead_captured"
LEAD_MERGED = "lead_merged"
LEAD_UNMERGED = "lead_unmerged"
LEAD_ACTIVITY_RECORDED = "lead_activity_recorded"


def _snapshot(lead) -> dict:
    snapshot = lead.snapshot()
    snapshot["captured_at"] = iso(lead.captured_at)
    return snapshot


def lead_captured(lead) -> tuple[str, dict, dict]:
    return LEAD_CAPTURED, {"lead_id": lead.lead_id}, {"lead": _snapshot(lead)}


def lead_merged(lead, touch: dict | None, merged_lead_id: str = "", match: str = "exact",
                score: float = 100.0) -> tuple[str, dict, dict]:
    """A capture (touch) or a whole lead (merged_lead_id, from MergeLeads) folded into ``lead``;
    ``match`` says how it was recognised: exact (email/phone/external id), fuzzy, or manual."""
    payload = {"lead": _snapshot(lead), "match": match, "match_score": score}
    if touch is not None:
        payload["touch"] = {**touch, "captured_at": iso(touch["captured_at"])}
    if merged_lead_id:
        payload["merged_lead_id"] = merged_lead_id
    return LEAD_MERGED, {"lead_id": lead.lead_id}, payload


def lead_unmerged(lead, primary) -> tuple[str, dict, dict]:
    return LEAD_UNMERGED, {"lead_id": lead.lead_id}, {"lead": _snapshot(lead), "primary": _snapshot(primary)}


def lead_activity_recorded(activity, stitched: bool = False) -> tuple[str, dict, dict]:
    """``stitched``: recorded earlier for an anonymous visitor, announced now the visitor is known."""
    return LEAD_ACTIVITY_RECORDED, {"lead_id": activity.lead_id, "activity_id": activity.id}, {
        "type": activity.type, "url": activity.url, "properties": dict(activity.properties),
        "activity_occurred_at": iso(activity.occurred_at), "visitor_id": activity.visitor_id,
        "stitched": stitched}
