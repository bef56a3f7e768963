"""Behaviour: what a lead (or an anonymous visitor) did, validated."""
import re
import uuid
from datetime import datetime, timedelta

from services.capture.models import LeadActivityDocument
from services.common.errors import Validator
from services.common.events import ACTIVITY_TYPES

NEEDS_URL = {"page_view", "email_click"}
MAX_PROPERTIES = 20
MAX_URL = 2000
MAX_FUTURE = timedelta(minutes=5)
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def new_activity(*, activity_type: str, lead_id: str = "", email: str = "", visitor_id: str = "", url: str = "",
                 occurred_at: datetime | None, properties: dict, activity_id: str, now: datetime,
                 recorded_by: str) -> LeadActivityDocument:
    """Validate all fields at once (named as in RecordActivityRequest) and build the activity."""
    check = Validator()
    check.check(activity_type in ACTIVITY_TYPES, "type", f"must be one of {', '.join(ACTIVITY_TYPES)}")
    check.check(bool(lead_id or email or visitor_id), "lead_id", "a lead_id, an email or a visitor_id is required")
    if visitor_id:
        check.check(bool(_ID.match(visitor_id)), "visitor_id", "must be 1-128 letters, digits, '_', '.', ':' or '-'")
    if activity_id:
        check.check(bool(_ID.match(activity_id)), "activity_id", "must be 1-128 letters, digits, '_', '.', ':' or '-'")
    if activity_type in NEEDS_URL:
        check.required(url, "url")
    if url and check.max_length(url, MAX_URL, "url"):
        check.check(url.startswith(("http://", "https://")), "url", "must be an http or https URL")
    if occurred_at is not None:
        check.check(occurred_at <= now + MAX_FUTURE, "occurred_at", "must not be in the future")
    check.check(len(properties) <= MAX_PROPERTIES, "properties", f"at most {MAX_PROPERTIES} entries")
    for key, value in properties.items():
        check.check(0 < len(key) <= 64 and len(str(value)) <= 500, f"properties[{key[:64]}]",
                    "keys at most 64 characters, values at most 500")
    check.raise_if_invalid()
    # A caller's ids live in the caller's own namespace: nobody can take (or probe) another's ids.
    return LeadActivityDocument(
        id=f"{recorded_by}:{activity_id}" if activity_id else str(uuid.uuid4()),
        type=activity_type, lead_id=lead_id, visitor_id=visitor_id, url=url,
        properties={str(k): str(v) for k, v in properties.items()}, occurred_at=occurred_at or now,
        recorded_at=now, recorded_by=recorded_by)
