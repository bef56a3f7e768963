"""Helpers for tests that talk to the real broker: listen to what a service emits, publish what
another service would, wait for eventual consistency, and read gRPC errors."""
import json
import time
import uuid

from google.rpc import error_details_pb2
from kombu import Connection, Producer, Queue
from nameko.standalone.events import get_event_exchange

from services.common.events import make_event


def bearer(token: str) -> list:
    return [("authorization", f"Bearer {token}")]


def violations_of(status) -> dict:
    """{field: description} from a google.rpc.Status's BadRequest details."""
    found = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.update({v.field: v.description for v in bad_request.field_violations})
    return found


class EventTap:
    """A private queue bound to a service's event exchange: what that service emitted."""

    def __init__(self, amqp_uri: str, service: str, event_types=("#",), max_length: int | None = None):
        self.connection = Connection(amqp_uri)
        channel = self.connection.channel()
        exchange = get_event_exchange(service)
        exchange(channel).declare()
        self.queue = Queue(f"test-tap-{uuid.uuid4().hex[:8]}", exchange=exchange, routing_key=event_types[0],
                           exclusive=True,
                           queue_arguments={"x-max-length": max_length} if max_length else None)(channel)
        self.queue.declare()
        for routing_key in event_types[1:]:
            self.queue.bind_to(exchange=exchange.name, routing_key=routing_key)
        self.received = []

    def _take(self) -> bool:
        message = self.queue.get(no_ack=True)
        if message is None:
            return False
        self.received.append(json.loads(message.body))
        return True

    def collect(self, count: int, timeout: float = 10.0) -> list:
        """Wait for at least ``count`` events in total, then return all received so far."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            if not self._take():
                time.sleep(0.02)
        return list(self.received)

    def wait_for(self, predicate, timeout: float = 10.0) -> list:
        """Events received so far that match, waiting until at least one does."""
        deadline = time.monotonic() + timeout
        while not any(predicate(e) for e in self.received) and time.monotonic() < deadline:
            if not self._take():
                time.sleep(0.02)
        return [e for e in self.received if predicate(e)]

    def settle(self, quiet: float = 0.5) -> list:
        """Everything emitted until nothing new arrives for ``quiet`` seconds."""
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < quiet:
            if self._take():
                idle_since = time.monotonic()
            else:
                time.sleep(0.02)
        return list(self.received)

    def of_type(self, event_type: str) -> list:
        return [e for e in self.received if e["event_type"] == event_type]

    def close(self) -> None:
        self.connection.release()


class EventPublisher:
    """Publishes an event exactly as another service's outbox relay would."""

    def __init__(self, amqp_uri: str):
        self.connection = Connection(amqp_uri)
        self.producer = Producer(self.connection.channel())

    def __call__(self, source_service: str, event: dict) -> dict:
        exchange = get_event_exchange(source_service)
        self.producer.publish(json.dumps(event), exchange=exchange, routing_key=event["event_type"],
                              declare=[exchange], content_type="application/json", content_encoding="utf-8",
                              headers={"nameko.trace_id": event["trace_id"]}, delivery_mode=2)
        return event

    def close(self) -> None:
        self.connection.release()


def new_event(event_type: str, subject_ids: dict, **snapshot) -> dict:
    return make_event(event_type, subject_ids, snapshot)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll until ``predicate()`` is truthy (eventual consistency); returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    return predicate()
