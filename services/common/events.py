"""Event envelope (DESIGN.md §2): every payload says which event it is, when, in which schema version,
about which subjects, under which trace — plus a snapshot of what consumers need."""
import uuid
from datetime import datetime, timezone

SCHEMA_VERSION = 1
ENVELOPE_KEYS = ("event_id", "event_type", "occurred_at", "schema_version", "trace_id")

# What a lead can do (capture records it, scoring counts it): the vocabulary of lead_activity_recorded.
ACTIVITY_TYPES = ("page_view", "pricing_page_view", "demo_request", "trial_signup", "content_download",
                  "email_open", "email_click", "webinar_attended", "form_submission")


def utcnow() -> datetime:
    """Now, to the millisecond: MongoDB keeps milliseconds, so what a caller is told at write time
    is exactly what it reads back later."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def make_event(event_type: str, subject_ids: dict, snapshot: dict, trace_id: str = "",
               occurred_at: datetime | None = None) -> dict:
    if not all(subject_ids.values()):
        raise ValueError(f"{event_type}: every subject id must be set, got {subject_ids}")
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "occurred_at": iso(occurred_at or utcnow()),
        "schema_version": SCHEMA_VERSION,
        "trace_id": trace_id or uuid.uuid4().hex,
        **subject_ids,
        **snapshot,
    }
