"""The event stream in reporting's store: the events a batch adds to the event log, numbered and kept
in pages, read in order and removed after the retention period.

A batch takes a run of positions from the head document (one atomic ``$inc``), writes its page, then
adds its events to the event log. No transaction: on the embedded store a transaction around the log
write held back reporting's other writes, and a history import took half as long again. So positions
can become visible out of order — a batch that took positions 101-200 may write its page after
another wrote 201-300 — and a position can stay empty for good when its writer crashed between the
two writes. Readers and writers agree on this:
  * a reader never passes an empty position at once: it waits for it up to ``GAP_WAIT_SECONDS``
    (pages are written milliseconds after their positions are taken), then skips it;
  * a writer whose page took longer than ``LATE_PAGE_SECONDS`` (half that) to write after taking its
    positions writes its events again under new positions, since a reader may have skipped them;
  * a writer that crashed before its events reached the log gets them again (the broker redelivers:
    a batch is acknowledged after it is kept) and pages them again.
So nothing stored is ever skipped; an event may appear twice (at least once). An event already in the
log (a redelivery of a batch that was kept) is not paged again.
"""
import logging
import threading
import time
from datetime import datetime

import pymongo
import pymongo.errors
from pymongo.errors import DocumentTooLarge

from services.common import metrics
from services.common.events import utcnow
from services.reporting.models import EventLogDocument, StreamHeadDocument, StreamPageDocument
from services.reporting.stream import LATE_PAGE_SECONDS, StreamBounds, Subscription

log = logging.getLogger(__name__)

HEAD = "head"
PAGE_EVENTS = 100  # events per page (a page over MongoDB's 16 MB document limit is split further)
PAGES_PER_READ = 10
EXPIRE_PAGES = 500  # pages removed per tick at most


class Doorbell:
    """Wakes this process's subscribers when events were paged here (others' are found by polling)."""

    def __init__(self):
        self._listeners: set[threading.Event] = set()

    def listen(self, wake: threading.Event) -> None:
        self._listeners.add(wake)

    def leave(self, wake: threading.Event) -> None:
        self._listeners.discard(wake)

    def ring(self) -> None:
        for wake in list(self._listeners):
            wake.set()


doorbell = Doorbell()


def _insert_pages(pages, first: int, entries: list[dict], stored_at: datetime) -> None:
    """Pages of ``entries`` from position ``first``; halved until each fits in a document."""
    for offset in range(0, len(entries), PAGE_EVENTS):
        chunk = entries[offset:offset + PAGE_EVENTS]
        start = first + offset
        try:
            pages.insert_one({"_id": start, "last": start + len(chunk) - 1, "stored_at": stored_at, "events": chunk})
        except DocumentTooLarge:
            if len(chunk) == 1:
                raise
            half = len(chunk) // 2
            _insert_pages(pages, start, chunk[:half], stored_at)
            _insert_pages(pages, start + half, chunk[half:], stored_at)


class EventStreamStore:
    def __init__(self, store):
        self.store = store

    @staticmethod
    def ensure_head() -> None:
        """The head document, made once at start: taking positions never upserts it, because two first
        batches upserting at once could both miss it (the embedded store then answered one with None)."""
        try:
            StreamHeadDocument._get_collection().update_one(
                {"_id": HEAD}, {"$setOnInsert": {"position": 0, "oldest": 1}}, upsert=True)
        except pymongo.errors.DuplicateKeyError:
            pass  # another replica made it at the same moment

    def keep(self, events: list[dict], log_documents: list[dict], source_service: str) -> int:
        """Page the events of a batch that are not in the event log yet, then add them to the log;
        returns how many were new."""
        seen = set(self.store.find_ids(EventLogDocument, [document["_id"] for document in log_documents]))
        fresh = {document["_id"]: (event, document) for event, document in zip(events, log_documents, strict=True)
                 if document["_id"] not in seen}
        if not fresh:
            return 0
        entries = [{"source_service": source_service, "payload": event} for event, _ in fresh.values()]
        head = StreamHeadDocument._get_collection()
        while True:
            taken_at = time.monotonic()
            taken = head.find_one_and_update({"_id": HEAD}, {"$inc": {"position": len(entries)}},
                                             return_document=pymongo.ReturnDocument.AFTER)
            if taken is None:
                raise RuntimeError("the event stream has no head document (EventStreamStore.ensure_head runs at "
                                   "start)")
            last = taken["position"]
            _insert_pages(StreamPageDocument._get_collection(), last - len(entries) + 1, entries, utcnow())
            metrics.EVENT_STREAM_POSITION.set(last)
            took = time.monotonic() - taken_at
            if took <= LATE_PAGE_SECONDS:
                break
            log.warning("event stream: %d events took %.1f s to page after taking their positions; paging them "
                        "again under new ones (a subscriber may see them twice, none misses them)", len(entries), took)
        try:
            EventLogDocument._get_collection().insert_many([document for _, document in fresh.values()],
                                                           ordered=False)
        except pymongo.errors.BulkWriteError as error:
            # A concurrent delivery of the same events logged them first: they are kept all the same.
            if any(e.get("code") != 11000 for e in error.details.get("writeErrors", ())):
                raise
        doorbell.ring()
        return len(fresh)

    def bounds(self) -> StreamBounds:
        """One small read (every subscriber asks at each poll): the head holds both ends, retention
        moving ``oldest`` as it removes pages."""
        head = StreamHeadDocument._get_collection().find_one({"_id": HEAD}) or {}
        latest = head.get("position", 0)
        metrics.EVENT_STREAM_POSITION.set(latest)
        return StreamBounds(oldest=head.get("oldest", 1), latest=latest)

    def read(self, subscription: Subscription, latest: int, now: float) -> tuple[list[dict], int, bool]:
        """The next events for ``subscription`` (at most its pending count), each as
        {position, source_service, payload}; the position read up to (the last event delivered when
        that filled the request, else the last one looked at or skipped); and whether it stopped at an
        empty position it is still waiting for."""
        found, read_up_to = [], subscription.after
        if subscription.pending <= 0 or latest <= subscription.after:
            return found, read_up_to, False
        expected = subscription.after + 1
        pages = list(StreamPageDocument._get_collection().find(
            {"last": {"$gt": subscription.after}}, sort=[("last", 1)], limit=PAGES_PER_READ))
        for page in pages:
            if page["_id"] > expected:
                if subscription.waits_for(expected, now):
                    return found, read_up_to, True
                expected = page["_id"]
                read_up_to = expected - 1
            for position, entry in enumerate(page["events"], start=page["_id"]):
                if position < expected:
                    continue
                read_up_to, expected = position, position + 1
                if subscription.matches(entry["payload"]):
                    found.append({"position": position, **entry})
                    if len(found) == subscription.pending:
                        return found, read_up_to, False
        if len(pages) < PAGES_PER_READ and expected <= latest:
            # Positions taken, pages not written (yet): the end of the stream is a gap too.
            if subscription.waits_for(expected, now):
                return found, read_up_to, True
            read_up_to = latest
        return found, read_up_to, False

    def expire(self, stored_before: datetime) -> int:
        """Remove the oldest pages stored before ``stored_before`` (at most ``EXPIRE_PAGES``); returns
        how many events left the stream. Positions are taken in about the order pages are stored, so
        the expired pages are a prefix."""
        collection = StreamPageDocument._get_collection()
        # The oldest page alone first: usually it is kept, and this is all the timer reads (the embedded
        # store reads whole pages even for two of their fields).
        oldest = collection.find_one({}, {"stored_at": 1}, sort=[("last", 1)])
        if oldest is None or oldest["stored_at"] >= stored_before:
            return 0
        cut, removed = None, 0
        for page in collection.find({}, {"last": 1, "stored_at": 1}, sort=[("last", 1)], limit=EXPIRE_PAGES,
                                    batch_size=20):
            if page["stored_at"] >= stored_before:
                break
            cut, removed = page["last"], removed + page["last"] - page["_id"] + 1
        if cut is None:
            return 0
        # The mark first: a reader never asks for a page about to go.
        StreamHeadDocument._get_collection().update_one({"_id": HEAD}, {"$max": {"oldest": cut + 1}})
        collection.delete_many({"last": {"$lte": cut}})
        metrics.EVENT_STREAM_EXPIRED.inc(removed)
        return removed
