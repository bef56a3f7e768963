"""The event stream as an ERP integration uses it: events delivered in stored order and only as many as
asked for, resumed after the last position without a gap or a repeat, narrowed by type and subject,
refused with a clear status when the position is out of retention, and ended for a reconnect when the
replica stops."""
import json
import uuid
from datetime import datetime, timezone

import eventlet
import eventlet.queue
import pytest
from grpc import StatusCode
from leadflow.events.v1 import events_pb2, events_pb2_grpc
from nameko_grpc.errors import GrpcError

from services.common.event_catalogue import EVENT_TYPES, undeclared_keys
from services.common.messaging import consumer_queues
from services.reporting import stream as stream_rules
from services.reporting.models import EventLogDocument, StreamHeadDocument, StreamPageDocument
from services.reporting.service import ReportingService
from tests.integration.conftest import start_isolated
from tests.support import new_event, violations_of, wait_until

FAST = {"EVENT_STREAM_KEEPALIVE_SECONDS": 0.3, "EVENT_STREAM_POLL_SECONDS": 0.1}


class Subscriber:
    """A client holding one Subscribe stream: asks for events when told to, collects every response."""

    def __init__(self, caller, first: events_pb2.SubscribeRequest):
        self.requests = eventlet.queue.Queue()
        self.requests.put(first)
        self.responses, self.error, self.done = [], None, False
        stream = caller.Subscribe(self._requests())
        self.reader = eventlet.spawn(self._read, stream)

    def _requests(self):
        while True:
            request = self.requests.get()
            if request is None:
                return
            yield request

    def _read(self, stream):
        try:
            for response in stream:
                self.responses.append(response)
        except GrpcError as error:
            self.error = error
        self.done = True

    def ask(self, num_requested: int) -> None:
        self.requests.put(events_pb2.SubscribeRequest(num_requested=num_requested))

    def events(self) -> list:
        return [event for response in self.responses for event in response.events]

    def keepalives(self) -> int:
        return sum(1 for response in self.responses if not response.events)

    def close(self) -> None:
        self.requests.put(None)
        self.reader.wait()


def captured(lead_id: str, **lead) -> tuple[str, dict]:
    return "capture", new_event("lead_captured", {"lead_id": lead_id}, lead={"lead_id": lead_id, **lead})


def won(opportunity_id: str, account_id: str) -> tuple[str, dict]:
    return "opportunity", new_event("opportunity_won", {"opportunity_id": opportunity_id}, account_id=account_id,
                                    status="won", amount="1200", currency="EUR", version=2,
                                    engaged_at="2026-11-02T09:00:00.000000Z")


@pytest.fixture
def reporting(run_service, infra):
    def start(**overrides):
        return start_isolated(run_service, infra, ReportingService, **{**FAST, **overrides})
    return start


def stored(publish, *events) -> None:
    for source_service, event in events:
        publish(source_service, event)
    ids = [event["event_id"] for _, event in events]
    assert wait_until(lambda: EventLogDocument.objects(id__in=ids).count() == len(set(ids)))


def test_a_subscriber_gets_what_it_asks_for_in_stored_order_and_resumes_without_gaps(reporting, tokens, publish):
    service = reporting()
    first = [captured(f"lead-{n}-{uuid.uuid4().hex[:6]}") for n in range(5)]
    stored(publish, *first)
    caller = service.grpc(events_pb2_grpc.EventStreamServiceStub, tokens["integration"])

    subscriber = Subscriber(caller, events_pb2.SubscribeRequest(
        num_requested=2, replay_preset=events_pb2.REPLAY_PRESET_EARLIEST))
    assert wait_until(lambda: len(subscriber.events()) == 2)
    # Flow control: nothing more than was asked for, only keepalives, until the client asks again.
    assert wait_until(lambda: subscriber.keepalives() >= 2)
    assert len(subscriber.events()) == 2
    subscriber.ask(10)
    assert wait_until(lambda: len(subscriber.events()) == 5)
    delivered = subscriber.events()
    assert [e.position for e in delivered] == [1, 2, 3, 4, 5]
    assert {e.event_id for e in delivered} == {event["event_id"] for _, event in first}
    sample = delivered[0]
    payload = json.loads(sample.payload_json)
    assert (sample.event_type, sample.source_service, sample.lead_id) == (
        "lead_captured", "capture", payload["lead_id"])
    assert payload["event_id"] == sample.event_id and payload["lead"]["lead_id"] == sample.lead_id
    # A live event arrives without asking again (7 still requested), then the client goes away.
    live = captured("lead-live")
    stored(publish, live)
    assert wait_until(lambda: len(subscriber.events()) == 6)
    assert subscriber.events()[-1].event_id == live[1]["event_id"]
    last_position = subscriber.responses[-1].latest_position
    assert last_position == 6 and subscriber.responses[-1].pending_num_requested == 6
    subscriber.close()

    # While it was away: two new events and a redelivery of one it had (numbered once, not again).
    later = [captured("lead-later-1"), captured("lead-later-2")]
    stored(publish, later[0], first[2], later[1])
    resumed = Subscriber(caller, events_pb2.SubscribeRequest(
        num_requested=100, replay_preset=events_pb2.REPLAY_PRESET_CUSTOM, replay_position=last_position))
    assert wait_until(lambda: len(resumed.events()) == 2)
    assert wait_until(lambda: resumed.keepalives() >= 1)
    assert [(e.position, e.event_id) for e in resumed.events()] == [
        (7, later[0][1]["event_id"]), (8, later[1][1]["event_id"])]
    resumed.close()

    # LATEST starts after what is stored now.
    tail = Subscriber(caller, events_pb2.SubscribeRequest(num_requested=5))
    assert wait_until(lambda: tail.keepalives() >= 1)
    assert tail.responses[0].latest_position == 8 and not tail.events()
    tail.close()


def test_filters_by_event_type_and_subject_and_skips_what_they_leave_out(reporting, tokens, publish):
    service = reporting()
    account = f"acc-{uuid.uuid4().hex[:6]}"
    events = [captured("lead-a"), won("opp-1", account), captured("lead-b"), won("opp-2", "acc-other"),
              won("opp-3", account)]
    stored(publish, *events)
    caller = service.grpc(events_pb2_grpc.EventStreamServiceStub, tokens["integration"])

    wins = Subscriber(caller, events_pb2.SubscribeRequest(
        num_requested=10, replay_preset=events_pb2.REPLAY_PRESET_EARLIEST, event_types=["opportunity_won"]))
    assert wait_until(lambda: len(wins.events()) == 3 and wins.keepalives() >= 1)
    assert [e.opportunity_id for e in wins.events()] == ["opp-1", "opp-2", "opp-3"]
    # Read up to the end, filtered events included: resuming there repeats nothing.
    assert wins.responses[-1].latest_position == 5
    wins.close()

    of_account = Subscriber(caller, events_pb2.SubscribeRequest(
        num_requested=10, replay_preset=events_pb2.REPLAY_PRESET_EARLIEST,
        subject_type=events_pb2.SUBJECT_TYPE_ACCOUNT, subject_id=account))
    assert wait_until(lambda: len(of_account.events()) == 2 and of_account.keepalives() >= 1)
    assert [e.opportunity_id for e in of_account.events()] == ["opp-1", "opp-3"]
    assert {e.account_id for e in of_account.events()} == {account}
    of_account.close()

    leads = Subscriber(caller, events_pb2.SubscribeRequest(
        num_requested=10, replay_preset=events_pb2.REPLAY_PRESET_EARLIEST,
        subject_type=events_pb2.SUBJECT_TYPE_LEAD))
    assert wait_until(lambda: len(leads.events()) == 2 and leads.keepalives() >= 1)
    assert [e.lead_id for e in leads.events()] == ["lead-a", "lead-b"]
    leads.close()


def first_answer(caller, request) -> GrpcError:
    """The status a subscription with this first request ends with."""
    subscriber = Subscriber(caller, request)
    assert wait_until(lambda: subscriber.done)
    subscriber.close()
    assert subscriber.error is not None and not subscriber.responses
    return subscriber.error


def test_bad_subscriptions_are_refused_naming_the_field_or_the_position(reporting, tokens, publish):
    service = reporting()
    stored(publish, captured("lead-x"), captured("lead-y"))
    caller = service.grpc(events_pb2_grpc.EventStreamServiceStub, tokens["integration"])

    error = first_answer(caller, events_pb2.SubscribeRequest(
        num_requested=0, event_types=["lead_captured", "lead_teleported"], subject_id="lead-x"))
    assert error.code == StatusCode.INVALID_ARGUMENT
    assert set(violations_of(error.status)) == {"num_requested", "event_types[1]", "subject_id"}

    error = first_answer(caller, events_pb2.SubscribeRequest(
        num_requested=1, replay_preset=events_pb2.REPLAY_PRESET_CUSTOM, replay_position=99))
    assert error.code == StatusCode.OUT_OF_RANGE and "latest position is 2" in error.message

    rep = service.grpc(events_pb2_grpc.EventStreamServiceStub, tokens["rep"])
    assert first_answer(rep, events_pb2.SubscribeRequest(num_requested=1)).code == StatusCode.PERMISSION_DENIED


def test_events_past_retention_leave_the_stream_and_an_old_position_is_refused(reporting, tokens, publish):
    # Retention of 0.5 s, enforced by the reporting timer.
    service = reporting(EVENT_STREAM_RETENTION_DAYS=0.5 / 86400, REPORTING_TIMER_SECONDS=0.2)
    stored(publish, captured("lead-old-1"), captured("lead-old-2"))
    assert wait_until(lambda: StreamPageDocument.objects.count() == 0, timeout=15)
    kept = captured("lead-new")
    stored(publish, kept)
    caller = service.grpc(events_pb2_grpc.EventStreamServiceStub, tokens["integration"])

    error = first_answer(caller, events_pb2.SubscribeRequest(
        num_requested=5, replay_preset=events_pb2.REPLAY_PRESET_CUSTOM, replay_position=1))
    assert error.code == StatusCode.OUT_OF_RANGE
    assert "oldest available position is 3" in error.message
    earliest = Subscriber(caller, events_pb2.SubscribeRequest(
        num_requested=5, replay_preset=events_pb2.REPLAY_PRESET_EARLIEST))
    assert wait_until(lambda: len(earliest.events()) == 1 or earliest.done)
    assert [(e.position, e.event_id) for e in earliest.events()] == [(3, kept[1]["event_id"])]
    earliest.close()
    # The event log, which rebuilds replay, keeps everything.
    assert EventLogDocument.objects.count() == 3


def test_a_replica_holds_a_bounded_number_of_streams_and_ends_them_when_it_stops(reporting, tokens, publish):
    service = reporting(EVENT_STREAM_MAX_SUBSCRIBERS=1)
    caller = service.grpc(events_pb2_grpc.EventStreamServiceStub, tokens["admin"])
    held = Subscriber(caller, events_pb2.SubscribeRequest(num_requested=5))
    assert wait_until(lambda: held.keepalives() >= 1)
    assert first_answer(caller, events_pb2.SubscribeRequest(num_requested=5)).code == StatusCode.RESOURCE_EXHAUSTED

    # Stopping ends the stream at once (the client reconnects elsewhere), not after nameko's wait for
    # running workers.
    stopping = eventlet.spawn(service.container.stop)
    assert wait_until(lambda: held.done, timeout=5)
    assert held.error is not None and held.error.code == StatusCode.UNAVAILABLE
    stopping.wait()


def test_the_catalogue_describes_every_event_type_reporting_keeps(reporting, tokens):
    service = reporting()
    answer = service.grpc(events_pb2_grpc.EventStreamServiceStub, tokens["integration"]).GetEventTypes(
        events_pb2.GetEventTypesRequest())
    names = [event_type.name for event_type in answer.event_types]
    kept = {queue.split("--")[0].split("-", 2)[2] for queue in consumer_queues(ReportingService)}
    assert names == sorted(EVENT_TYPES) and set(names) == kept
    won_type = next(t for t in answer.event_types if t.name == "opportunity_won")
    assert list(won_type.source_services) == ["opportunity"] and "opportunity_id" in won_type.subjects
    assert {"amount", "currency", "account_id", "closed_from"} <= {field.name for field in won_type.fields}
    assert undeclared_keys(won("opp-9", "acc-9")[1]) == set()


def test_a_position_taken_but_not_yet_written_is_waited_for_and_one_never_written_is_skipped(
        reporting, tokens, publish, monkeypatch):
    # A writer takes its positions, then writes its page a moment later; one that crashed in between
    # never writes it (its events are redelivered and paged again under new positions).
    monkeypatch.setattr(stream_rules, "GAP_WAIT_SECONDS", 1.5)
    service = reporting()
    stored(publish, captured("lead-before"))  # position 1
    head = StreamHeadDocument._get_collection()
    head.update_one({"_id": "head"}, {"$inc": {"position": 2}})  # 2-3: a crashed writer's
    stored(publish, captured("lead-after"))  # 4
    caller = service.grpc(events_pb2_grpc.EventStreamServiceStub, tokens["integration"])
    subscriber = Subscriber(caller, events_pb2.SubscribeRequest(
        num_requested=10, replay_preset=events_pb2.REPLAY_PRESET_EARLIEST))
    assert wait_until(lambda: len(subscriber.events()) == 2)
    assert [e.position for e in subscriber.events()] == [1, 4]

    # Positions 5-6 taken, their page written late (within the wait): delivered, in order, before 7.
    late = new_event("lead_captured", {"lead_id": "lead-late"}, lead={"lead_id": "lead-late"})
    head.update_one({"_id": "head"}, {"$inc": {"position": 2}})
    stored(publish, captured("lead-last"))  # 7
    eventlet.sleep(0.5)
    assert len(subscriber.events()) == 2  # waiting at 5, not skipping to 7
    StreamPageDocument._get_collection().insert_one({"_id": 5, "last": 6, "stored_at": datetime.now(timezone.utc),
                                                     "events": [{"source_service": "capture", "payload": late}] * 2})
    assert wait_until(lambda: len(subscriber.events()) == 5)
    assert [e.position for e in subscriber.events()] == [1, 4, 5, 6, 7]
    subscriber.close()
