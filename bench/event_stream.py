"""(xvii) The event stream on a reporting-only platform: events delivered per second to one subscriber
and to ten reading the whole stream, and publish -> delivered latency for a subscriber following it
live. Events go in through the broker, as the services' relays publish them."""
import threading
import time

import grpc
from leadflow.events.v1 import events_pb2, events_pb2_grpc

from bench.common import _wait, logs_dir, percentile
from bench.reporting import drop_backlog, reporting_history
from services.cli.events import Follower
from services.devstack.supervisor import Platform

ASK = 1000  # events asked for at a time (the most a request may ask)
LIVE_EVENTS = 200
LIVE_RATE = 20.0  # events/s while latency is measured: a lone event, not a burst


class Reader:
    """One Subscribe stream (the CLI's Follower) read in its own thread, noting when each event came."""

    def __init__(self, channel, token: str, first: events_pb2.SubscribeRequest, expected: int):
        self.expected = expected
        self.received_at: dict[str, float] = {}
        self.count, self.done = 0, threading.Event()
        self.follower = Follower(events_pb2_grpc.EventStreamServiceStub(channel),
                                 [("authorization", f"Bearer {token}")], first, ask=ASK)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for response in self.follower.responses():
                now = time.perf_counter()
                for event in response.events:
                    self.received_at[event.event_id] = now
                self.count += len(response.events)
                if self.count >= self.expected:
                    break
        except grpc.RpcError:
            pass
        self.done.set()

    def close(self):
        self.follower.close()
        self.thread.join(10)


def _read_everything(channel, token: str, subscribers: int, total: int) -> dict:
    started = time.perf_counter()
    readers = [Reader(channel, token, events_pb2.SubscribeRequest(
        num_requested=ASK, replay_preset=events_pb2.REPLAY_PRESET_EARLIEST), total) for _ in range(subscribers)]
    for reader in readers:
        reader.done.wait(900)
    seconds = time.perf_counter() - started
    delivered = sum(reader.count for reader in readers)
    for reader in readers:
        reader.close()
    return {"subscribers": subscribers, "events": delivered, "seconds": seconds,
            "events_per_s": delivered / seconds, "per_subscriber_events_per_s": delivered / seconds / subscribers}


def bench_event_stream(infra, table: str, integration_token: str, events: int) -> dict:
    from services.common.settings import database_name
    from tests.support import EventPublisher
    import pymongo
    drop_backlog(infra.amqp_uri)
    stack = Platform({**infra.env(), "LEADFLOW_AUTH_TOKENS": table, "LOG_LEVEL": "WARNING"},
                     logs_dir("event-stream"), services=("reporting",), any_free_port=True).start()
    db = pymongo.MongoClient(infra.mongo_uri)[database_name(infra.db_prefix, "reporting")]
    results = {}
    try:
        stack.wait_ready(processes=stack.of("reporting"))
        channel = grpc.insecure_channel(stack.addresses()["reporting"])
        publish = EventPublisher(infra.amqp_uri)
        history = reporting_history(max(1, events // 10), 20_000_000)

        def head() -> int:
            found = db["event_stream_head"].find_one({"_id": "head"})
            return found["position"] if found else 0
        before = head()
        started = time.perf_counter()
        for service, event in history:
            publish(service, event)
        # Every event numbered (each handler's queue drains at its own pace: the last one published
        # is not the last one stored).
        _wait(lambda: head() >= before + len(history))
        total = head()
        results["stored"] = {"events": len(history), "seconds": time.perf_counter() - started,
                             "latest_position": total}
        time.sleep(5)  # reporting's projections and roll-ups finish their backlog
        results["one_subscriber"] = _read_everything(channel, integration_token, 1, total)
        results["ten_subscribers"] = _read_everything(channel, integration_token, 10, total)

        follower = Reader(channel, integration_token, events_pb2.SubscribeRequest(num_requested=ASK), LIVE_EVENTS)
        time.sleep(1.0)  # subscribed at LATEST before the first live event
        live = reporting_history(LIVE_EVENTS // 10, 30_000_000)[:LIVE_EVENTS]
        published_at = {}
        for service, event in live:
            published_at[event["event_id"]] = time.perf_counter()
            publish(service, event)
            time.sleep(1 / LIVE_RATE)
        follower.done.wait(120)
        latencies = [(follower.received_at[i] - at) * 1000 for i, at in published_at.items()
                     if i in follower.received_at]
        follower.close()
        publish.close()
        results["live"] = {"events": len(live), "delivered": len(latencies), "rate_per_s": LIVE_RATE,
                           "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}
        channel.close()
    finally:
        stack.stop()
    return results
