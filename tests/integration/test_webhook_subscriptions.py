"""Webhook subscriptions to the event stream, against a real HTTP receiver: events POSTed one at a time
in stream order, signed with the subscription's secret, retried with back-off, dead-lettered when they
keep failing and delivered again on replay."""
import json
import time
import uuid

import eventlet
import eventlet.wsgi
import pytest
from grpc import StatusCode
from leadflow.events.v1 import events_pb2, events_pb2_grpc

from services.common.webhook_signing import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, is_signed_by
from services.reporting.service import ReportingService
from tests.integration.conftest import start_isolated
from tests.support import new_event, violations_of, wait_until

FAST = {"WEBHOOK_POLL_SECONDS": 0.2, "WEBHOOK_RETRY_SECONDS": 0.2, "WEBHOOK_MAX_ATTEMPTS": 3}


class Receiver:
    """An HTTP endpoint an ERP would run: records every request; ``failing`` decides which fail."""

    def __init__(self):
        self.requests, self.failing = [], lambda delivery_id, attempt: False
        self.socket = eventlet.listen(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/leadflow-events"
        self.server = eventlet.spawn(eventlet.wsgi.server, self.socket, self.app, log_output=False)

    def app(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {name: environ.get("HTTP_" + name.upper().replace("-", "_"), "")
                   for name in (SIGNATURE_HEADER, TIMESTAMP_HEADER, DELIVERY_HEADER, "X-Leadflow-Event")}
        attempt = 1 + sum(1 for r in self.requests if r["headers"][DELIVERY_HEADER] == headers[DELIVERY_HEADER])
        failed = self.failing(headers[DELIVERY_HEADER], attempt)
        self.requests.append({"headers": headers, "body": body, "ok": not failed})
        start_response("500 Internal Server Error" if failed else "200 OK", [("Content-Type", "text/plain")])
        return [b"no" if failed else b"ok"]

    def delivered(self) -> list[str]:
        return [r["headers"][DELIVERY_HEADER] for r in self.requests if r["ok"]]

    def close(self):
        self.server.kill()
        self.socket.close()


@pytest.fixture
def receiver():
    opened = Receiver()
    yield opened
    opened.close()


def subscribe(caller, receiver, subscription_id="erp", types=("lead_captured", "opportunity_won")):
    return caller.PutWebhookSubscription(events_pb2.PutWebhookSubscriptionRequest(
        subscription=events_pb2.WebhookSubscription(subscription_id=subscription_id, url=receiver.url,
                                                    event_types=list(types), description="ERP sales orders")))


def captured(lead_id: str) -> tuple[str, dict]:
    return "capture", new_event("lead_captured", {"lead_id": lead_id}, lead={"lead_id": lead_id})


def test_events_arrive_signed_in_stream_order_and_a_failed_delivery_is_retried(run_service, infra, tokens,
                                                                               publish, receiver):
    service = start_isolated(run_service, infra, ReportingService, **FAST)
    admin = service.grpc(events_pb2_grpc.EventStreamServiceStub, tokens["admin"])
    created = subscribe(admin, receiver)
    secret = created.secret.encode()
    assert len(created.secret) >= 32 and created.subscription.position == 0

    first_id = None
    receiver.failing = lambda delivery_id, attempt: delivery_id == first_id and attempt <= 2
    events = [captured("lead-a"),
              ("scoring", new_event("lead_scored", {"lead_id": "lead-a"}, score={"total": 50}, source="web")),
              ("opportunity", new_event("opportunity_won", {"opportunity_id": "opp-1"}, account_id="acc-1",
                                        amount="1200", currency="EUR", status="won", version=2)),
              captured("lead-b")]
    first_id = events[0][1]["event_id"]
    for source_service, event in events:
        publish(source_service, event)
        eventlet.sleep(0.05)  # one after the other, as they happen
    wanted = [event["event_id"] for _, event in events if event["event_type"] != "lead_scored"]
    assert wait_until(lambda: receiver.delivered() == wanted, timeout=20), receiver.delivered()
    # Two failures of the first event, then it and the rest, each once; nothing of the unsubscribed type.
    assert [r["headers"][DELIVERY_HEADER] for r in receiver.requests] == [first_id, first_id, *wanted]
    for request in receiver.requests:
        headers = request["headers"]
        assert is_signed_by(secret, headers[TIMESTAMP_HEADER], request["body"], headers[SIGNATURE_HEADER],
                            now=time.time())
        event = json.loads(request["body"])
        assert event["event_id"] == headers[DELIVERY_HEADER] and event["event_type"] == headers["X-Leadflow-Event"]
    [listed] = admin.ListWebhookSubscriptions(events_pb2.ListWebhookSubscriptionsRequest()).subscriptions
    assert (listed.failed_attempts, listed.dead_letters, listed.last_error) == (0, 0, "")
    assert listed.position == 4
    # Replacing it keeps its place and its secret (not shown again).
    replaced = subscribe(admin, receiver, types=("opportunity_won",))
    assert replaced.secret == "" and replaced.subscription.position == 4
    assert list(replaced.subscription.event_types) == ["opportunity_won"]


def test_a_delivery_that_keeps_failing_is_dead_lettered_and_replayed_later(run_service, infra, tokens, publish,
                                                                         receiver):
    service = start_isolated(run_service, infra, ReportingService, **FAST)
    admin = service.grpc(events_pb2_grpc.EventStreamServiceStub, tokens["admin"])
    subscribe(admin, receiver, types=("lead_captured",))
    broken, after = captured(f"lead-{uuid.uuid4().hex[:6]}"), captured("lead-after")
    broken_id = broken[1]["event_id"]
    receiver.failing = lambda delivery_id, attempt: delivery_id == broken_id
    publish(*broken)
    eventlet.sleep(0.05)
    publish(*after)
    # Three attempts, then the next event goes.
    assert wait_until(lambda: receiver.delivered() == [after[1]["event_id"]], timeout=20)
    assert [r["headers"][DELIVERY_HEADER] for r in receiver.requests].count(broken_id) == 3
    [letter] = admin.ListWebhookDeadLetters(events_pb2.ListWebhookDeadLettersRequest(
        subscription_id="erp")).dead_letters
    assert (letter.event_id, letter.event_type, letter.attempts, letter.last_error, letter.position) == (
        broken_id, "lead_captured", 3, "HTTP 500", 1)
    [listed] = admin.ListWebhookSubscriptions(events_pb2.ListWebhookSubscriptionsRequest()).subscriptions
    assert listed.dead_letters == 1 and listed.position == 2

    # Replayed while the receiver still fails: tried once, a dead letter again, the stream goes on.
    assert admin.ReplayWebhookDeadLetters(events_pb2.ReplayWebhookDeadLettersRequest(
        subscription_id="erp")).replayed == 1
    later = captured("lead-later")
    publish(*later)
    assert wait_until(lambda: receiver.delivered() == [after[1]["event_id"], later[1]["event_id"]], timeout=10)

    def letters():
        return admin.ListWebhookDeadLetters(events_pb2.ListWebhookDeadLettersRequest(
            subscription_id="erp")).dead_letters
    assert [(letter.event_id, letter.attempts) for letter in letters()] == [(broken_id, 4)]

    receiver.failing = lambda delivery_id, attempt: False  # the receiver is fixed
    assert admin.ReplayWebhookDeadLetters(events_pb2.ReplayWebhookDeadLettersRequest(
        subscription_id="erp")).replayed == 1
    assert wait_until(lambda: receiver.delivered() == [after[1]["event_id"], later[1]["event_id"], broken_id],
                      timeout=10)
    assert not letters()


def test_bad_subscriptions_are_refused_naming_the_field_and_only_admins_manage_them(run_service, infra, tokens,
                                                                                   receiver):
    service = start_isolated(run_service, infra, ReportingService, **FAST)
    admin = service.grpc(events_pb2_grpc.EventStreamServiceStub, tokens["admin"])
    bad = admin.error("PutWebhookSubscription", events_pb2.PutWebhookSubscriptionRequest(
        subscription=events_pb2.WebhookSubscription(subscription_id="no spaces", url="ftp://erp.example.com",
                                                    event_types=["lead_captured", "lead_vanished"])))
    assert bad.code == StatusCode.INVALID_ARGUMENT
    assert set(violations_of(bad.status)) == {"subscription.subscription_id", "subscription.url",
                                              "subscription.event_types[1]"}
    assert not admin.ListWebhookSubscriptions(events_pb2.ListWebhookSubscriptionsRequest()).subscriptions
    integration = service.grpc(events_pb2_grpc.EventStreamServiceStub, tokens["integration"])
    refused = integration.error("PutWebhookSubscription", events_pb2.PutWebhookSubscriptionRequest(
        subscription=events_pb2.WebhookSubscription(subscription_id="erp", url=receiver.url,
                                                    event_types=["lead_captured"])))
    assert refused.code == StatusCode.PERMISSION_DENIED
    subscribe(admin, receiver)
    admin.DeleteWebhookSubscription(events_pb2.DeleteWebhookSubscriptionRequest(subscription_id="erp"))
    assert admin.error("DeleteWebhookSubscription", events_pb2.DeleteWebhookSubscriptionRequest(
        subscription_id="erp")).code == StatusCode.NOT_FOUND
