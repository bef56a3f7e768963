"""Events capture emits."""
from services.common.events import iso

LEAD_CAPTURED = "lead_captured"
LEAD_MERGED = "lead_merged"


def lead_captured(lead) -> tuple[str, dict, dict]:
    snapshot = lead.snapshot()
    snapshot["captured_at"] = iso(lead.captured_at)
    return LEAD_CAPTURED, {"lead_id": lead.lead_id}, {"lead": snapshot}


def lead_merged(lead, touch: dict) -> tuple[str, dict, dict]:
    snapshot = lead.snapshot()
    snapshot["captured_at"] = iso(lead.captured_at)
    return LEAD_MERGED, {"lead_id": lead.lead_id}, {
        "lead": snapshot, "touch": {**touch, "captured_at": iso(touch["captured_at"])}}
