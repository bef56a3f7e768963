"""The event stream: stored events and the catalogue -> protos; the first request -> plain values."""
import json

from leadflow.events.v1 import events_pb2

from services.common.event_catalogue import EVENT_TYPES
from services.common.events import parse_iso
from services.common.mappers import to_timestamp

PRESET_FROM_PROTO = {events_pb2.REPLAY_PRESET_UNSPECIFIED: "latest", events_pb2.REPLAY_PRESET_LATEST: "latest",
                     events_pb2.REPLAY_PRESET_EARLIEST: "earliest", events_pb2.REPLAY_PRESET_CUSTOM: "custom"}
# Events per response are cut at about this much JSON, well inside a client's 4 MiB message limit.
RESPONSE_BYTES = 1024 * 1024
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


def responses(found: list[dict], read_up_to: int, pending: int):
    """``found`` as SubscribeResponses of at most about RESPONSE_BYTES of events each. Each one but the
    last says how far it went (its last event) and counts the events still to come as pending."""
    events, size = [], 0
    for index, entry in enumerate(found):
        event = stream_event_to_proto(entry)
        if events and size + len(event.payload_json) > RESPONSE_BYTES:
            yield events_pb2.SubscribeResponse(events=events, latest_position=events[-1].position,
                                               pending_num_requested=pending + len(found) - index)
            events, size = [], 0
        events.append(event)
        size += len(event.payload_json)
    yield events_pb2.SubscribeResponse(events=events, latest_position=read_up_to, pending_num_requested=pending)


def event_types_to_proto() -> events_pb2.GetEventTypesResponse:
    return events_pb2.GetEventTypesResponse(event_types=[
        events_pb2.EventType(name=spec.name, source_services=list(spec.sources), description=spec.description,
                             subjects=[*spec.subjects, *spec.optional_subjects],
                             fields=[events_pb2.EventField(name=name, description=description)
                                     for name, description in spec.fields.items()])
        for spec in EVENT_TYPES.values()])


def webhook_to_proto(raw: dict, dead_letters: int = 0) -> events_pb2.WebhookSubscription:
    return events_pb2.WebhookSubscription(
        subscription_id=raw["_id"], url=raw["url"], event_types=raw["event_types"], description=raw["description"],
        position=raw["position"], failed_attempts=raw["failed_attempts"], last_error=raw["last_error"],
        dead_letters=dead_letters)


def dead_letter_to_proto(raw: dict) -> events_pb2.WebhookDeadLetter:
    return events_pb2.WebhookDeadLetter(position=raw["position"], event_id=raw["event_id"],
                                        event_type=raw["event_type"], attempts=raw["attempts"],
                                        last_error=raw["last_error"],
                                        dead_lettered_at=to_timestamp(raw["dead_lettered_at"]))
