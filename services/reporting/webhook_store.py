"""Webhook subscriptions in reporting's store, and their delivery: each subscription follows the event
stream from its own position, one event at a time, so a receiver sees its events in stream order.

Any replica may deliver a subscription; a lease keeps two from delivering the same one at once. The
position is stored after each delivery, so a crash delivers at most one event again (with the same
X-Leadflow-Delivery id, for the receiver to recognise). A failed delivery waits with exponential
back-off; after WEBHOOK_MAX_ATTEMPTS it is dead-lettered and the next event goes.
"""
import logging
import time
import urllib.error
from datetime import datetime, timedelta

import pymongo

from services.common import metrics, outbound
from services.common.errors import NotFound
from services.common.events import utcnow
from services.common.store import EPOCH
from services.reporting import webhooks
from services.reporting.models import WebhookDeadLetterDocument, WebhookSubscriptionDocument
from services.reporting.stream import Subscription

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
EVENTS_PER_CLAIM = 50
DEAD_LETTERS_LISTED = 1000


class WebhookStore:
    def __init__(self, stream):
        self.stream = stream
        self.subscriptions = WebhookSubscriptionDocument._get_collection()
        self.dead_letters = WebhookDeadLetterDocument._get_collection()

    # ---- admin -------------------------------------------------------------------------------------

    def put(self, spec: webhooks.WebhookSpec) -> tuple[dict, str]:
        """Create (at the latest position, with a new secret, returned) or replace the subscription."""
        fields = {"url": spec.url, "event_types": list(spec.event_types), "description": spec.description}
        secret = webhooks.new_secret()
        now = utcnow()
        self.subscriptions.update_one({"_id": spec.subscription_id}, {"$set": fields, "$setOnInsert": {
            "secret": secret, "position": self.stream.bounds().latest, "failed_attempts": 0, "last_error": "",
            "next_attempt_at": now, "lease_until": EPOCH, "created_at": now}}, upsert=True)
        stored = self.subscriptions.find_one({"_id": spec.subscription_id})
        return stored, secret if stored["secret"] == secret else ""

    def listed(self) -> list[tuple[dict, int]]:
        return [(raw, self.dead_letters.count_documents({"subscription_id": raw["_id"], "replay": False}))
                for raw in self.subscriptions.find({}, sort=[("_id", 1)])]

    def delete(self, subscription_id: str) -> None:
        if self.subscriptions.delete_one({"_id": subscription_id}).deleted_count == 0:
            raise NotFound("webhook subscription", subscription_id)
        self.dead_letters.delete_many({"subscription_id": subscription_id})

    def _existing(self, subscription_id: str) -> None:
        if self.subscriptions.find_one({"_id": subscription_id}, {"_id": 1}) is None:
            raise NotFound("webhook subscription", subscription_id)

    def dead_letters_of(self, subscription_id: str) -> list[dict]:
        self._existing(subscription_id)
        return list(self.dead_letters.find({"subscription_id": subscription_id},
                                           sort=[("dead_lettered_at", -1)], limit=DEAD_LETTERS_LISTED))

    def replay(self, subscription_id: str) -> int:
        self._existing(subscription_id)
        replayed = self.dead_letters.update_many({"subscription_id": subscription_id, "replay": False},
                                                 {"$set": {"replay": True}}).modified_count
        self.subscriptions.update_one({"_id": subscription_id}, {"$set": {"next_attempt_at": utcnow()}})
        return replayed

    # ---- delivery ----------------------------------------------------------------------------------

    def deliver_due(self, budget_seconds: float, max_attempts: int, first_retry_seconds: float,
                    timeout: float) -> int:
        """Deliver for the subscriptions that are due, one claimed at a time, for about
        ``budget_seconds``; returns how many events were delivered."""
        delivered, deadline, handled = 0, time.monotonic() + budget_seconds, []
        while time.monotonic() < deadline:
            now = utcnow()
            claimed = self.subscriptions.find_one_and_update(
                {"_id": {"$nin": handled}, "next_attempt_at": {"$lte": now}, "lease_until": {"$lte": now}},
                {"$set": {"lease_until": now + LEASE}}, return_document=pymongo.ReturnDocument.AFTER)
            if claimed is None:
                break
            handled.append(claimed["_id"])  # once per call: the timer comes back for the rest
            delivered += self._deliver(claimed, max_attempts, first_retry_seconds, timeout)
        return delivered

    def _deliver(self, subscription: dict, max_attempts: int, first_retry_seconds: float, timeout: float) -> int:
        state = {"position": subscription["position"], "failed_attempts": subscription["failed_attempts"],
                 "last_error": subscription["last_error"]}
        delivered = 0

        def save(**changes):
            state.update(changes)
            self.subscriptions.update_one({"_id": subscription["_id"]}, {"$set": dict(state)})

        def release(retry_at: datetime | None = None):
            self.subscriptions.update_one({"_id": subscription["_id"]}, {"$set": {
                "lease_until": EPOCH, "next_attempt_at": retry_at or utcnow()}})

        def send(event: dict) -> str:
            body, headers = webhooks.delivery(event, subscription["secret"], time.time())
            try:
                outbound.post(subscription["url"], body, headers, timeout)
                error = ""
            except (urllib.error.URLError, OSError) as failure:
                error = outbound.failure_of(failure)
            metrics.WEBHOOK_DELIVERIES.labels("ok" if not error else "failed").inc()
            return error

        for letter in self.dead_letters.find({"subscription_id": subscription["_id"], "replay": True},
                                             sort=[("position", 1)], limit=EVENTS_PER_CLAIM):
            error = send(letter["payload"])
            if error:
                # Back among the dead letters (one more try per replay): it must not hold up the stream.
                self.dead_letters.update_one({"_id": letter["_id"]}, {"$set": {"last_error": error, "replay": False,
                                                                               "dead_lettered_at": utcnow()},
                                                                      "$inc": {"attempts": 1}})
                continue
            self.dead_letters.delete_one({"_id": letter["_id"]})
            delivered += 1

        bounds = self.stream.bounds()
        if state["position"] < bounds.oldest - 1:
            log.warning("webhook %s: events %d-%d left the stream (retention) before they could be delivered",
                        subscription["_id"], state["position"] + 1, bounds.oldest - 1)
            save(position=bounds.oldest - 1, failed_attempts=0,
                 last_error=f"events up to position {bounds.oldest - 1} expired before delivery")
        reading = Subscription(after=state["position"], pending=EVENTS_PER_CLAIM,
                               event_types=tuple(subscription["event_types"]))
        found, read_up_to, waiting = self.stream.read(reading, bounds.latest, time.monotonic())
        for entry in found:
            error = send(entry["payload"])
            if not error:
                save(position=entry["position"], failed_attempts=0, last_error="")
                delivered += 1
                continue
            failed = state["failed_attempts"] + 1
            if failed < max_attempts:
                save(failed_attempts=failed, last_error=error)
                release(utcnow() + timedelta(seconds=webhooks.backoff_seconds(failed, first_retry_seconds)))
                return delivered
            payload = entry["payload"]
            self.dead_letters.update_one({"_id": f"{subscription['_id']}:{payload['event_id']}"}, {"$set": {
                "subscription_id": subscription["_id"], "position": entry["position"],
                "event_id": payload["event_id"], "event_type": payload["event_type"], "payload": payload,
                "attempts": failed, "last_error": error, "dead_lettered_at": utcnow(), "replay": False}},
                upsert=True)
            metrics.WEBHOOK_DEAD_LETTERS.inc()
            log.warning("webhook %s: gave up delivering event %s (%s) after %d attempts: %s", subscription["_id"],
                        payload["event_id"], payload["event_type"], failed, error)
            save(position=entry["position"], failed_attempts=0, last_error=error)
        if not found and not waiting and read_up_to > state["position"]:
            save(position=read_up_to)
        release()
        return delivered
