"""The transactional outbox's relay (DESIGN.md §4): publishes what committed transactions left in the
outbox to the service's event exchange, persistent and confirmed.

A transaction that publishes events writes one outbox document holding all of them, in the order it
published them (``outbox_document``): an import batch of 500 leads costs one outbox write and one
delete, not 500 of each. The relay publishes a batch of such documents with publisher confirms
pipelined (``PipelinedPublisher``: every message sent, then the broker's acknowledgements awaited
together), and deletes the documents once every event in them is confirmed.
"""
import collections
import logging
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import amqp
import eventlet
import pymongo
from kombu import Connection
from kombu.serialization import dumps
from nameko.messaging import encode_to_headers
from nameko.standalone.events import get_event_exchange

from services.common import metrics
from services.common.events import utcnow

log = logging.getLogger(__name__)

OUTBOX = "outbox"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def outbox_document(events: list[dict]) -> dict:
    """The one outbox document of a transaction that published ``events`` (in publishing order)."""
    return {"_id": uuid.uuid4().hex, "events": events, "created_at": utcnow(), "lease_until": EPOCH}


def events_of(document: dict) -> list[dict]:
    """The events an outbox document holds. Entries written before documents held several events
    (an upgrade may find some left) hold one, as ``payload``."""
    return document["events"] if "events" in document else [document["payload"]]


class PublishFailed(Exception):
    """The broker refused (nacked) a message or the connection failed before every confirm came."""


class PipelinedPublisher:
    """Persistent, mandatory publishes to one exchange on one channel in confirm mode, with the
    confirms of a batch awaited together: sending waits for nothing, then the broker's
    acknowledgements (often one ``multiple`` ack for many messages) are drained until every message
    of the batch is confirmed. A message no queue is bound for comes back as a return before its
    ack; ``publish`` says which."""

    CONFIRM_TIMEOUT = 30.0

    def __init__(self, amqp_uri: str, exchange):
        self.amqp_uri = amqp_uri
        self.exchange = exchange
        self.connection = None

    def _channel(self):
        if self.connection is None:
            connection = Connection(self.amqp_uri, connect_timeout=5)
            connection.connect()
            channel = connection.default_channel
            self.exchange(channel).declare()
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            channel.events["basic_return"].add(self._on_return)
            self.connection, self.channel = connection, channel
            self._sent = 0  # delivery tags count from 1 on a channel in confirm mode
            self._unconfirmed, self._nacked, self._returned = set(), set(), set()
        return self.channel

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {tag for tag in self._unconfirmed if tag > delivery_tag}
        else:
            self._unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        nacked = {tag for tag in self._unconfirmed if tag <= delivery_tag} if multiple else {delivery_tag}
        self._nacked |= nacked
        self._unconfirmed -= nacked

    def _on_return(self, exc, exchange, routing_key, message) -> None:
        self._returned.add(message.properties.get("message_id"))

    def publish(self, events: list[dict]) -> set[str]:
        """Publish ``events`` in order and wait until the broker has confirmed them all. Returns the ids
        of those no queue was bound for (not stored by the broker). Raises PublishFailed, or the
        connection's error, when any was not confirmed: the caller keeps them all to try again."""
        try:
            channel = self._channel()
            self._returned.clear()
            first_tag = self._sent + 1
            for event in events:
                content_type, encoding, body = dumps(event, serializer="json")
                channel.basic_publish(
                    amqp.Message(body, content_type=content_type, content_encoding=encoding, delivery_mode=2,
                                 message_id=event["event_id"],
                                 application_headers=encode_to_headers({"trace_id": event.get("trace_id", "")})),
                    exchange=self.exchange.name, routing_key=event["event_type"], mandatory=True)
                self._sent += 1
                self._unconfirmed.add(self._sent)
            deadline = time.monotonic() + self.CONFIRM_TIMEOUT
            while any(first_tag <= tag <= self._sent for tag in self._unconfirmed):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PublishFailed(f"the broker did not confirm {len(self._unconfirmed)} messages in time")
                self.connection.drain_events(timeout=remaining)
            nacked = [tag for tag in self._nacked if tag >= first_tag]
            self._nacked.clear()
            if nacked:
                raise PublishFailed(f"the broker refused {len(nacked)} of {len(events)} messages")
            return set(self._returned)
        except Exception:
            self.close()  # a half-confirmed channel is not reused: the next batch starts afresh
            raise

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.release()
            except Exception:  # already broken: nothing to release
                pass
            self.connection = None


class OutboxRelay:
    """Publishes committed outbox documents, in commit order.

    Two paths, so that the common case costs one database delete per batch, not a claim per event:

    * hand-off: the process that committed passes its documents over in memory; they are published
      at once and then deleted from the outbox in one delete;
    * sweep: every poll interval, documents older than ``ORPHAN_AFTER`` — left by a process that
      died between commit and publish, or holding events not routable yet — are claimed under a
      lease (so replicas do not publish them together) and published.

    Either path may publish an event a second time (a crash after publishing, before deleting, or a
    hand-off slower than ORPHAN_AFTER); consumers are idempotent on event_id.
    """

    BATCH_EVENTS = 1000
    SWEEP_DOCUMENTS = 100
    ORPHAN_AFTER = timedelta(seconds=5)
    LEASE = timedelta(seconds=30)
    UNROUTABLE_BACKOFF = timedelta(seconds=2)
    BACKLOG_COUNT_SECONDS = 15.0

    def __init__(self, service_name: str, db, amqp_uri: str, poll_seconds: float):
        self.service_name = service_name
        self.outbox = db[OUTBOX]
        self.publisher = PipelinedPublisher(amqp_uri, get_event_exchange(service_name))
        self.poll_seconds = poll_seconds
        self.owner = uuid.uuid4().hex
        self._handed_off = collections.deque()
        self._wake = threading.Event()
        self._running = True
        self._last_sweep = 0.0
        self._last_backlog_count = float("-inf")

    def hand_off(self, document: dict) -> None:
        self._handed_off.append(document)
        self._wake.set()

    def stop(self) -> None:
        self._running = False
        self._wake.set()

    def run(self) -> None:
        while self._running or self._handed_off:
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            try:
                while self._handed_off:
                    batch, events = [], 0
                    while self._handed_off and (not batch or events + len(self._handed_off[0]["events"])
                                                <= self.BATCH_EVENTS):
                        batch.append(self._handed_off.popleft())
                        events += len(batch[-1]["events"])
                    self.publish(batch)
                if self._running and time.monotonic() - self._last_sweep >= self.poll_seconds:
                    self._last_sweep = time.monotonic()
                    while self._running and self.sweep() == self.SWEEP_DOCUMENTS:
                        pass
                    self.report_backlog()
            except Exception:
                log.exception("outbox relay failed; the sweep will retry what is left")
                eventlet.sleep(1)
        self.publisher.close()

    def report_backlog(self) -> None:
        """Counting is a scan in SecantusDB (it grows with deleted entries), so count once per
        typical scrape interval rather than on every sweep."""
        if time.monotonic() - self._last_backlog_count >= self.BACKLOG_COUNT_SECONDS:
            self._last_backlog_count = time.monotonic()
            metrics.OUTBOX_BACKLOG.labels(self.service_name).set(self.outbox.estimated_document_count())

    def sweep(self) -> int:
        now = utcnow()
        ids = [d["_id"] for d in self.outbox.find(
            {"created_at": {"$lt": now - self.ORPHAN_AFTER}, "lease_until": {"$lt": now}}, {"_id": 1})
            .sort("created_at", pymongo.ASCENDING).limit(self.SWEEP_DOCUMENTS)]
        if not ids:
            return 0
        lease_until = now + self.LEASE
        self.outbox.update_many({"_id": {"$in": ids}, "lease_until": {"$lt": now}},
                                {"$set": {"lease_until": lease_until, "lease_owner": self.owner}})
        claimed = list(self.outbox.find({"_id": {"$in": ids}, "lease_owner": self.owner,
                                         "lease_until": lease_until}).sort("created_at", pymongo.ASCENDING))
        self.publish([{**document, "events": events_of(document)} for document in claimed])
        return len(ids)

    def publish(self, documents: list[dict]) -> None:
        events = [event for document in documents for event in events_of(document)]
        if not events:
            return
        try:
            unroutable = self.publisher.publish(events)
        except PublishFailed:
            raise
        except Exception as error:
            # Most often a connection the broker (or a proxy) closed while it was idle: one more try on
            # a fresh one. Whatever of the first try arrived arrives twice; consumers are idempotent.
            log.warning("publishing %d events failed (%s); trying once more on a new connection", len(events),
                        error)
            unroutable = self.publisher.publish(events)
        for event in events:
            if event["event_id"] not in unroutable:
                metrics.OUTBOX_PUBLISHED.labels(self.service_name, event["event_type"]).inc()
        done = [d["_id"] for d in documents if not any(e["event_id"] in unroutable for e in d["events"])]
        if done:
            self.outbox.delete_many({"_id": {"$in": done}})
        if unroutable:
            # No queue is bound yet (a consumer that has not started): keep those events, try again soon.
            # Their document keeps only them; the others of it are out already.
            log.warning("%d events have no consumer queue yet; keeping them", len(unroutable))
            for document in documents:
                kept = [e for e in document["events"] if e["event_id"] in unroutable]
                if kept:
                    self.outbox.update_one({"_id": document["_id"]}, {
                        "$set": {"events": kept, "lease_until": utcnow() + self.UNROUTABLE_BACKOFF},
                        "$unset": {"payload": ""}})
