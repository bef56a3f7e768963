"""The event stream: stored events and the catalogue -> protos; the first request -> plain values."""
import json

from leadflow.events.v1 import events_pb2

from services.common.event_catalogue import EVENT_TYPES
from services.common.events import parse_iso
from services.common.mappers import to_timestamp

PRESET_FROM_PROTO = {events_pb2.REPLAY_PRESET_UNSPECIFIED: "latest", events_pb2.REPLAY_PRESET_LATEST: "latest",
                     events_pb2.REPLAY_PRESET_EARLIEST: "earliest", events_pb2.REPLAY_PRESET_CUSTOM: "custom"}
SUBJECT_FROM_PROTO = {events_pb2.SUBJECT_TYPE_UNSPECIFIED: "", events_pb2.SUBJECT_TYPE_LEAD: "lead",
                      events_pb2.SUBJECT_TYPE_OPPORTUNITY: "opportunity", events_pb2.SUBJECT_TYPE_ACCOUNT: "account"}


def first_request_values(request) -> dict:
    """The first SubscribeRequest as subscription_from's arguments (unknown enum numbers kept as such,
    so the check names them)."""
    return {"num_requested": request.num_requested,
            "preset": PRESET_FROM_PROTO.get(request.replay_preset, str(request.replay_preset)),
            "replay_position": request.replay_position, "event_types": list(request.event_types),
            "subject_type": SUBJECT_FROM_PROTO.get(request.subject_type, str(request.subject_type)),
            "subject_id": request.subject_id}


def stream_event_to_proto(entry: dict) -> events_pb2.StreamEvent:
    """``entry``: {position, source_service, payload} as the stream store reads it."""
    payload = entry["payload"]
    return events_pb2.StreamEvent(
        position=entry["position"], event_id=payload["event_id"], event_type=payload["event_type"],
        source_service=entry["source_service"], occurred_at=to_timestamp(parse_iso(payload["occurred_at"])),
        lead_id=payload.get("lead_id", ""), opportunity_id=payload.get("opportunity_id", ""),
        account_id=payload.get("account_id", ""), payload_json=json.dumps(payload, ensure_ascii=False, default=str))


def event_types_to_proto() -> events_pb2.GetEventTypesResponse:
    return events_pb2.GetEventTypesResponse(event_types=[
        events_pb2.EventType(name=spec.name, source_services=list(spec.sources), description=spec.description,
                             subjects=[*spec.subjects, *spec.optional_subjects],
                             fields=[events_pb2.EventField(name=name, description=description)
                                     for name, description in spec.fields.items()])
        for spec in EVENT_TYPES.values()])
