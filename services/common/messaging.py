"""Event consumption that survives failure (DESIGN.md §4), in batches.

``event_handler`` is nameko's, with two changes. Its method takes a list of events and answers one
outcome per event (``BatchEventHandler``): what arrives while earlier batches are being handled is
handled together, typically in one store transaction. And a message whose handling fails is retried
a few times with backoff and then moved to the dead-letter queue with its error, instead of being
dropped (nameko's default) or requeued forever (``requeue_on_error``, which blocks the queue).
Messages are acked only after the handler has stored its work, so a crash means redelivery.
"""
import collections
import logging
import time
import traceback
from functools import partial

import eventlet
from nameko import config
from nameko.amqp.publish import get_producer
from nameko.events import EventHandler
from nameko.exceptions import ContainerBeingKilled
from nameko.messaging import decode_from_headers

from services.common import metrics
from services.common.dead_letter import (ATTEMPTS_HEADER, DEAD_LETTER_QUEUE, ERROR_HEADER, HANDLER_HEADER,
                                         ORIGINAL_QUEUE_HEADER, dead_letter_queue)
from services.common.outages import OUTAGE_ERRORS
from services.common.settings import DEFAULTS
from services.common.store import DUPLICATE, StoreBusy

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 5.0
MAX_OUTAGE_BACKOFF_SECONDS = 30.0
OUTAGE_RETRIES_HEADER = "x-leadflow-outage-retries"
BUSY_SINCE_HEADER = "x-leadflow-busy-since"
MAX_BUSY_BACKOFF_SECONDS = 10.0
# How long an event may keep meeting a busy store before its tries count as failed attempts. A
# writer that died inside its transaction holds its documents until the server ends that
# transaction (60 s on MongoDB and SecantusDB); three times that is patience enough, and a
# conflict that outlasts it is a livelock worth dead-lettering and a look.
BUSY_PATIENCE_SECONDS = 180.0


class ReliableEventHandler(EventHandler):
    def setup(self):
        super().setup()
        self.max_attempts = int(config.get("EVENT_MAX_ATTEMPTS", 5))
        self.handler_name = f"{self.container.service_name}.{self.method_name}"

    def handle_message_processed(self, message, result=None, exc_info=None):
        service = self.container.service_name
        if exc_info is None:
            outcome = "duplicate" if result is DUPLICATE else "ok"
        else:
            outcome = self._retry_or_dead_letter(message, exc_info)
        metrics.EVENTS_HANDLED.labels(service, self.method_name, outcome).inc()
        # Ack only now: the work (or the copy that will retry it) is safely stored.
        self.consumer.ack_message(message)

    def _retry_or_dead_letter(self, message, exc_info) -> str:
        error = "".join(traceback.format_exception_only(exc_info[0], exc_info[1])).strip()
        if isinstance(exc_info[1], OUTAGE_ERRORS):
            # The event is fine; a store is not reachable. Waiting for it, however long, is right:
            # dead-lettering would turn every event of a short outage into manual replay work.
            retries = int(message.headers.get(OUTAGE_RETRIES_HEADER, 0)) + 1
            log.warning("%s: a store is unreachable (retry %d, not counted as a failed attempt): %s",
                        self.handler_name, retries, error)
            eventlet.sleep(min(0.5 * 2 ** min(retries, 6), MAX_OUTAGE_BACKOFF_SECONDS))
            self._republish(message, self.queue.name, {**message.headers, OUTAGE_RETRIES_HEADER: retries})
            return "retried"
        busy_since = float(message.headers.get(BUSY_SINCE_HEADER, 0)) or time.time()
        waited = time.time() - busy_since
        if isinstance(exc_info[1], StoreBusy) and waited < BUSY_PATIENCE_SECONDS:
            # The event is fine; other writers hold what it writes. Not a failed attempt either.
            log.warning("%s: the store is busy (for %.0f s, not counted as a failed attempt): %s",
                        self.handler_name, waited, error)
            eventlet.sleep(min(0.25 + waited, MAX_BUSY_BACKOFF_SECONDS))
            self._republish(message, self.queue.name, {**message.headers, BUSY_SINCE_HEADER: busy_since})
            return "retried"
        attempts = int(message.headers.get(ATTEMPTS_HEADER, 0)) + 1
        headers = {**message.headers, ATTEMPTS_HEADER: attempts}
        if attempts < self.max_attempts:
            log.warning("%s failed (attempt %d of %d), retrying: %s",
                        self.handler_name, attempts, self.max_attempts, error)
            eventlet.sleep(min(0.1 * 2 ** attempts, MAX_BACKOFF_SECONDS))
            self._republish(message, self.queue.name, headers)
            return "retried"
        log.error("%s failed %d times, dead-lettering: %s", self.handler_name, attempts, error)
        headers.update({
            ERROR_HEADER: error[:2000],
            HANDLER_HEADER: self.handler_name,
            ORIGINAL_QUEUE_HEADER: self.queue.name,
            "x-leadflow-original-routing-key": message.delivery_info.get("routing_key", ""),
            "x-leadflow-original-exchange": message.delivery_info.get("exchange", ""),
        })
        self._republish(message, DEAD_LETTER_QUEUE, headers, declare=[dead_letter_queue()])
        return "dead_lettered"

    def _republish(self, message, queue_name: str, headers: dict, declare=()):
        with get_producer(config["AMQP_URI"]) as producer:
            producer.publish(
                message.body, exchange="", routing_key=queue_name, headers=headers,
                content_type=message.content_type, content_encoding=message.content_encoding,
                delivery_mode=2, declare=list(declare), retry=True)


class BatchEventHandler(ReliableEventHandler):
    """Deliveries handled in batches: the handler takes a list of events and returns one outcome per
    event (``DUPLICATE`` for one handled before), typically after one store transaction for all of
    them (``Store.run_once_each``). Every delivery of a batch is acked once the batch is stored.

    Batches form by themselves: a delivery that finds a free slot (``EVENT_BATCH_CONCURRENCY``
    batches run at once) starts a batch at once, so a lone event waits for nothing; deliveries that
    arrive while every slot is busy wait, and the next free slot takes up to ``EVENT_BATCH_SIZE`` of
    them. The broker's prefetch keeps the next batch ready while the current ones run.

    A failing batch is split: its events run again one by one, so one poison event is retried and
    dead-lettered alone (``ReliableEventHandler``) while the others are applied. An event that
    failed before (it carries an attempts header) always runs alone. A batch that met an unreachable
    store is kept whole and run again after a back-off, however long the outage lasts.

    A ``background=True`` handler (reporting's) is off the path leads wait on: after each batch it
    waits ``BACKGROUND_EVENT_YIELD`` times as long as the batch took before it starts the next, so in
    a burst (a 10,000-row import) the store serves capture, scoring and routing first, and the
    background consumer catches up with larger batches afterwards. Its deliveries are acked before
    the wait, and the wait holds no worker.
    """

    def __init__(self, *args, background: bool = False, **kwargs):
        self.background = background
        super().__init__(*args, **kwargs)

    def setup(self):
        self.batch_size = max(1, int(config.get("EVENT_BATCH_SIZE", DEFAULTS["EVENT_BATCH_SIZE"])))
        self.concurrency = max(1, int(config.get("EVENT_BATCH_CONCURRENCY", DEFAULTS["EVENT_BATCH_CONCURRENCY"])))
        self.consumer_options["prefetch_count"] = self.batch_size * (self.concurrency + 1)
        self.yield_ratio = max(0.0, float(config.get("BACKGROUND_EVENT_YIELD", DEFAULTS["BACKGROUND_EVENT_YIELD"]))) \
            if self.background else 0.0
        super().setup()
        self._waiting = collections.deque()  # (body, message) not yet in a batch
        self._alone = collections.deque()  # (body, message) to run as batches of one
        self._running = 0
        self._outages = 0

    def handle_message(self, body, message):
        if int(message.headers.get(ATTEMPTS_HEADER, 0)) > 0:
            self._alone.append((body, message))
        else:
            self._waiting.append((body, message))
        self._dispatch()

    def stop(self):
        super().stop()  # from now on the consumer hands new deliveries back itself
        # Deliveries not yet in a batch go back to the queue now, for this or another replica.
        while self._waiting or self._alone:
            _, message = (self._alone or self._waiting).popleft()
            self.consumer.requeue_message(message)

    def _dispatch(self) -> None:
        if self.consumer.should_stop:
            return  # stopping: what waits was handed back to the broker
        while self._running < self.concurrency and (self._alone or self._waiting):
            if self._alone:
                batch = [self._alone.popleft()]
            else:
                batch = [self._waiting.popleft() for _ in range(min(self.batch_size, len(self._waiting)))]
            self._running += 1
            self._spawn(batch)

    def _spawn(self, batch: list) -> None:
        started = time.monotonic()
        events, messages = [body for body, _ in batch], [message for _, message in batch]
        context_data = decode_from_headers(messages[0].headers)

        def spawn_worker():
            try:
                self.container.spawn_worker(self, (events,), {}, context_data=context_data,
                                            handle_result=partial(self._batch_handled, batch, started))
            except ContainerBeingKilled:
                for message in messages:
                    self.consumer.requeue_message(message)
                self._running -= 1
        # Not in the consumer's own thread: waiting for a worker there would stop its heartbeats.
        self.container.spawn_managed_thread(spawn_worker, identifier=f"batch[{self.handler_name}]")

    def _batch_handled(self, batch, started, worker_ctx, result=None, exc_info=None):
        try:
            messages = [message for _, message in batch]
            metrics.EVENT_BATCH_SIZE.labels(self.container.service_name, self.method_name).observe(len(batch))
            if exc_info is None:
                outcomes = result if result is not None else [None] * len(messages)
                for message, outcome in zip(messages, outcomes, strict=True):
                    self.handle_message_processed(message, outcome)
                self._outages = 0
            elif len(batch) == 1:
                self.handle_message_processed(messages[0], None, exc_info)
            elif isinstance(exc_info[1], OUTAGE_ERRORS):
                self._outages += 1
                log.warning("%s: a store is unreachable; a batch of %d waits (retry %d)",
                            self.handler_name, len(batch), self._outages)
                eventlet.sleep(min(0.5 * 2 ** min(self._outages, 6), MAX_OUTAGE_BACKOFF_SECONDS))
                self._waiting.extendleft(reversed(batch))
            else:
                log.warning("%s: a batch of %d failed (%s); running its events one by one", self.handler_name,
                            len(batch), type(exc_info[1]).__name__)
                metrics.EVENT_BATCHES_SPLIT.labels(self.container.service_name, self.method_name).inc()
                self._alone.extend(batch)
        finally:
            # After work done, not after a failure or an outage's back-off (those wait on their own).
            pause = (time.monotonic() - started) * self.yield_ratio if exc_info is None else 0.0
            if pause > 0:
                eventlet.spawn_after(pause, self._slot_freed)  # the worker ends now; the slot after the pause
            else:
                self._slot_freed()
        return result, exc_info

    def _slot_freed(self) -> None:
        self._running -= 1
        self._dispatch()


event_handler = BatchEventHandler.decorator


def consumer_queues(service_cls) -> list[str]:
    """The durable queue of each event handler of a service, named as nameko names them."""
    return [f"evt-{entrypoint.source_service}-{entrypoint.event_type}--{service_cls.name}.{name}"
            for name in dir(service_cls)
            for entrypoint in getattr(getattr(service_cls, name), "nameko_entrypoints", ())
            if isinstance(entrypoint, EventHandler)]
