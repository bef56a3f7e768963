"""Integration tests: one real service container, with its real entrypoints, against the real
RabbitMQ, Redis and Mongo wire protocol. Other services are replaced by publishing the events they
would emit and by listening to what the service under test emits. Run under ``nameko test``:
inside this eventlet process gRPC calls go through nameko-grpc's client, never grpcio.
"""
import uuid

import pytest
from amqp.exceptions import NotFound as QueueNotFound
from kombu import Connection
from nameko import config
from nameko.containers import ServiceContainer
from nameko_grpc.client import Client
from nameko_grpc.errors import GrpcError

from services.common.messaging import consumer_queues

from services.common import grpc_transport
from services.common.settings import service_config
from services.devstack.infrastructure import free_port
from tests.support import EventPublisher, EventTap, bearer


# The same gRPC transport as production service processes (services/common/runner.py).
grpc_transport.install()


class RunningService:
    def __init__(self, container, grpc_port: int, http_port: int):
        self.container, self.grpc_port, self.http_port = container, grpc_port, http_port
        self.callers = []

    def grpc(self, stub, token: str | None = None) -> "Caller":
        self.callers.append(Caller(Client(f"//127.0.0.1:{self.grpc_port}", stub), token))
        return self.callers[-1]

    def stop(self) -> None:
        for caller in self.callers:
            caller.close()
        self.container.stop()


class Caller:
    """A started nameko-grpc client that adds the bearer token to each call."""

    def __init__(self, client: Client, token: str | None):
        self.client, self.token = client, token
        self.proxy = client.start()

    def __getattr__(self, method: str):
        def invoke(request, token: str | None = "default"):
            token = self.token if token == "default" else token
            return getattr(self.proxy, method)(request, metadata=bearer(token) if token else [])
        return invoke

    def error(self, method: str, request, token: str | None = "default") -> GrpcError:
        with pytest.raises(GrpcError) as caught:
            getattr(self, method)(request, token=token)
        return caught.value

    def close(self) -> None:
        self.client.stop()


# Services whose events no integration test service consumes: a queue for everything they emit stands
# in for their consumers. Otherwise unconsumed events stay in the outbox (as they must) and each later
# test's relay offers them to the broker again, where a test's own tap then receives them as its own.
STAND_IN_CONSUMERS = {"capture", "scoring", "routing"}


@pytest.fixture
def run_service(infra, tokens):
    """Start a service container configured for this test session."""
    started, patchers, sinks = [], [], []

    def start(service_cls, **overrides) -> RunningService:
        if service_cls.name in STAND_IN_CONSUMERS and "AMQP_URI" not in overrides:
            sinks.append(EventTap(infra.amqp_uri, service_cls.name, ("#",), max_length=1000))
        grpc_port, http_port = free_port(), free_port()
        settings = {**service_config(service_cls.name), "AMQP_URI": infra.amqp_uri, "MONGODB_URI": infra.mongo_uri,
                    "REDIS_URI": infra.redis_uri, "MONGODB_DB_PREFIX": infra.db_prefix,
                    "REDIS_KEY_PREFIX": infra.redis_prefix, "GRPC_BIND_PORT": grpc_port,
                    "WEB_SERVER_ADDRESS": f"127.0.0.1:{http_port}", "LEADFLOW_AUTH_TOKENS": tokens.table,
                    "EVENT_MAX_ATTEMPTS": 3, "OUTBOX_POLL_SECONDS": 0.2,
                    # Reporting projects at once: these tests check what it projects; how it gives way
                    # to leads in a burst is test_background_consumers', and the e2e platforms run it.
                    "BACKGROUND_EVENT_YIELD": 0, **overrides}
        patcher = config.patch(settings)
        patcher.start()
        patchers.append(patcher)
        container = ServiceContainer(service_cls)
        container.start()
        service = RunningService(container, grpc_port, http_port)
        started.append(service)
        return service

    yield start
    for service in reversed(started):
        service.stop()
    for patcher in reversed(patchers):
        patcher.stop()
    for sink in sinks:
        sink.close()


@pytest.fixture
def tap(infra):
    taps = []

    def open_tap(service: str, *event_types: str) -> EventTap:
        taps.append(EventTap(infra.amqp_uri, service, event_types or ("#",)))
        return taps[-1]
    yield open_tap
    for t in taps:
        t.close()


@pytest.fixture
def publish(infra):
    publisher = EventPublisher(infra.amqp_uri)
    yield publisher
    publisher.close()


def start_isolated(run_service, infra, service_cls, **overrides) -> RunningService:
    """Start a service with a database and Redis keys of its own, and empty consumer queues: policies,
    reps or models it stores change no other test, and events other tests left waiting in its
    durable queues (emitted while no such service ran) do not reach it."""
    with Connection(infra.amqp_uri) as connection:
        for queue in consumer_queues(service_cls):
            channel = connection.channel()
            try:
                channel.queue_purge(queue)
            except QueueNotFound:
                pass  # not declared yet: nothing waits in it
            finally:
                channel.close() if channel.is_open else None
    own = uuid.uuid4().hex[:6]
    return run_service(service_cls, **{"MONGODB_DB_PREFIX": f"{infra.db_prefix}i{own}",
                                       "REDIS_KEY_PREFIX": f"{infra.redis_prefix}:i{own}", **overrides})
