"""A service's own MongoDB database: atomic units of work with a transactional outbox, and idempotent
event consumption, one event or a batch at a time (DESIGN.md §4).

State and the events it causes are written in one transaction (its events in one outbox document),
so a crash between the write and the publish cannot drop an event: the committing process hands the
document to the relay (services/common/outbox.py) at once, and a sweep publishes whatever a crashed
process left. An event may be published twice (a crash after publishing, before deleting);
consumers are idempotent on event_id.
"""
import logging
import random

import eventlet
import mongoengine
import pymongo
from mongoengine.connection import get_connection, get_db
from nameko import config
from nameko.extensions import DependencyProvider
from pymongo.errors import DuplicateKeyError

from services.common import metrics
from services.common.errors import NotFound
from services.common.events import make_event, utcnow
from services.common.logs import trace_context
from services.common.outbox import EPOCH, OUTBOX, OutboxRelay, outbox_document
from services.common.settings import database_name

log = logging.getLogger(__name__)

PROCESSED_EVENTS = "processed_events"
# Ids looked up per query. SecantusDB answers an ``_id $in`` through the index but its cost grows
# faster than the list (measured on 50,000 documents: 50 ids 6 ms, 100 ids 18 ms, 200 ids 58 ms,
# against 0.6 ms per id one query at a time); on MongoDB the chunking costs nothing.
IDS_PER_QUERY = 50
__all__ = ["EPOCH", "OUTBOX", "Store", "UnitOfWork"]


def id_chunks(ids: list, size: int = IDS_PER_QUERY):
    """``ids`` cut into lists of ``size``, one query's ``$in`` each."""
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def get_or_not_found(document_cls, identifier: str, kind: str):
    """The document with this id, or NotFound naming what was looked for."""
    document = document_cls.objects(id=identifier).first()
    if document is None:
        raise NotFound(kind, identifier)
    return document


class Duplicate:
    """Returned by ``Store.run_once`` for an event this handler has already processed."""

    def __repr__(self):
        return "DUPLICATE"


DUPLICATE = Duplicate()


class StaleWrite(Exception):
    """Another worker changed the document since it was read; the whole unit of work is retried."""


MAX_TRANSACTION_ATTEMPTS = 12
MAX_COMMIT_ATTEMPTS = 3
RETRY_DELAY_FIRST = 0.005
RETRY_DELAY_MAX = 0.5
TRANSIENT_LABEL = "TransientTransactionError"
UNKNOWN_COMMIT_LABEL = "UnknownTransactionCommitResult"
WRITE_CONFLICT = 112
INTERNAL_ERROR = 1


class StoreBusy(Exception):
    """A transaction kept losing to other writers for all ``MAX_TRANSACTION_ATTEMPTS`` attempts.

    Nothing of it is stored, and the request or event is fine: the usual cause is a writer that
    died inside its transaction (a killed pod), whose writes hold their documents until the server
    ends that transaction (``transactionLifetimeLimitSeconds``, 60 s on MongoDB and SecantusDB).
    Callers answer ABORTED (retry); event handlers wait and retry without counting a failed attempt.
    """

    def __init__(self, reason: str, attempts: int, cause: BaseException):
        super().__init__(f"the store stayed busy ({reason} on each of {attempts} attempts): {cause}")
        self.reason = reason


class CommitFailed(Exception):
    """``commitTransaction`` itself answered an error: ``cause`` is the server's answer."""

    def __init__(self, cause: pymongo.errors.PyMongoError):
        super().__init__(str(cause))
        self.cause = cause


def retry_reason(error: BaseException) -> str | None:
    """Why a failed transaction may simply be run again (the metric's label), or None when it may not.

    * a document changed since it was read (our own revision checks): ``stale_write``;
    * a write conflict as MongoDB reports it, statement or commit: code 112 or the
      ``TransientTransactionError`` label (also a transaction the server ended): ``write_conflict``;
    * a commit conflict as SecantusDB reports it: ``commitTransaction`` answered ``InternalError``
      (code 1) without labels. Its WiredTiger commit failed and the server rolled the transaction
      back, so nothing of it is stored and running it again is the only way on.
    """
    if isinstance(error, StaleWrite):
        return "stale_write"
    committing = isinstance(error, CommitFailed)
    cause = error.cause if committing else error
    if not isinstance(cause, pymongo.errors.PyMongoError):
        return None
    if cause.has_error_label(TRANSIENT_LABEL) or getattr(cause, "code", None) == WRITE_CONFLICT:
        return "write_conflict"
    if committing and getattr(cause, "code", None) == INTERNAL_ERROR:
        return "commit_conflict"
    return None


def retry_delay(attempt: int) -> float:
    """Full jitter over an exponential ceiling, so writers that collided do not collide again."""
    return random.uniform(0, min(RETRY_DELAY_FIRST * 2 ** attempt, RETRY_DELAY_MAX))


def _attempt(session, work, uow):
    """One run of ``work`` in a transaction on ``session``, committed; errors leave nothing behind."""
    session.start_transaction()
    try:
        result = work(uow)
        uow.write_outbox()
    except BaseException:
        if session.in_transaction:
            session.abort_transaction()
        raise
    for commit_attempt in range(1, MAX_COMMIT_ATTEMPTS + 1):
        try:
            session.commit_transaction()
            return result
        except pymongo.errors.PyMongoError as error:
            # The commit's answer was lost on the way (a network blip): asking again is safe, a
            # commit is idempotent. Anything else is the commit's own verdict.
            if error.has_error_label(UNKNOWN_COMMIT_LABEL) and commit_attempt < MAX_COMMIT_ATTEMPTS:
                continue
            if error.has_error_label(TRANSIENT_LABEL):
                raise
            raise CommitFailed(error) from error


class UnitOfWork:
    """Reads and writes inside one transaction; ``publish`` adds an event to the same transaction."""

    def __init__(self, db, session):
        self.db = db
        self.session = session
        self.published = []
        self.outbox_entry = None
        self.after_commit_work = []

    def after_commit(self, work) -> None:
        """Run ``work()`` once the transaction has committed, outside it. Only for derived data that
        many writers share (a hot document inside every transaction makes them conflict and retry)
        and whose loss in a crash between commit and ``work`` costs quality, never correctness."""
        self.after_commit_work.append(work)

    def _collection(self, document_cls):
        return document_cls._get_collection()

    def find_one(self, document_cls, query: dict):
        raw = self._collection(document_cls).find_one(query, session=self.session)
        return document_cls._from_son(raw) if raw else None

    def insert(self, document) -> None:
        document.validate()
        self._collection(type(document)).insert_one(document.to_mongo().to_dict(), session=self.session)

    def replace(self, document) -> None:
        document.validate()
        son = document.to_mongo().to_dict()
        self._collection(type(document)).replace_one({"_id": son["_id"]}, son, upsert=True, session=self.session)

    def replace_at_revision(self, document, read_revision: int | None) -> None:
        """Write ``document`` only if nobody else wrote it since it was read at ``read_revision``
        (None: it did not exist); the document's ``revision`` becomes one higher. Raises StaleWrite."""
        document.revision = (read_revision or 0) + 1
        document.validate()
        son = document.to_mongo().to_dict()
        collection = self._collection(type(document))
        if read_revision is None:
            try:
                collection.insert_one(son, session=self.session)
            except DuplicateKeyError as error:
                raise StaleWrite(son["_id"]) from error
            return
        # A document written before it had revisions reads as 0 and has no such field: both match.
        expected = {"$in": [0, None]} if read_revision == 0 else read_revision
        result = collection.replace_one({"_id": son["_id"], "revision": expected}, son, session=self.session)
        if result.matched_count != 1:
            raise StaleWrite(son["_id"])

    def replace_many_at_revision(self, written: list) -> None:
        """``replace_at_revision`` for many documents of one kind in one bulk write: ``written`` holds
        (document, read_revision) pairs. Raises StaleWrite if any of them changed since it was read."""
        if not written:
            return
        operations = []
        for document, read_revision in written:
            document.revision = (read_revision or 0) + 1
            document.validate()
            son = document.to_mongo().to_dict()
            if read_revision is None:
                operations.append(pymongo.InsertOne(son))
            else:
                expected = {"$in": [0, None]} if read_revision == 0 else read_revision
                operations.append(pymongo.ReplaceOne({"_id": son["_id"], "revision": expected}, son))
        try:
            result = self._collection(type(written[0][0])).bulk_write(operations, ordered=True, session=self.session)
        except pymongo.errors.BulkWriteError as error:
            if any(e.get("code") == 11000 for e in error.details.get("writeErrors", ())):
                raise StaleWrite("a document written meanwhile") from error
            raise
        if result.matched_count != sum(1 for _, read_revision in written if read_revision is not None):
            raise StaleWrite("a document changed meanwhile")

    def find_by_ids(self, document_cls, ids) -> dict:
        """The documents with these ids, {id: document}, in chunks of ``IDS_PER_QUERY``."""
        ids, found = list(dict.fromkeys(ids)), {}
        for start in range(0, len(ids), IDS_PER_QUERY):
            for raw in self._collection(document_cls).find({"_id": {"$in": ids[start:start + IDS_PER_QUERY]}},
                                                           session=self.session):
                found[raw["_id"]] = document_cls._from_son(raw)
        return found

    def existing_ids(self, document_cls, ids) -> set:
        """Which of ``ids`` exist, ``IDS_PER_QUERY`` at a time."""
        ids, found = list(dict.fromkeys(ids)), set()
        for start in range(0, len(ids), IDS_PER_QUERY):
            found.update(raw["_id"] for raw in self._collection(document_cls).find(
                {"_id": {"$in": ids[start:start + IDS_PER_QUERY]}}, {"_id": 1}, session=self.session))
        return found

    def update_one(self, document_cls, query: dict, update: dict, upsert: bool = False):
        return self._collection(document_cls).update_one(query, update, upsert=upsert, session=self.session)

    def next_number(self, document_cls, field: str = "_id", query: dict | None = None) -> int:
        """The next version number of a versioned document (the highest ``field`` among those matching
        ``query``, plus one), read inside the writing transaction so two writers cannot take the same."""
        latest = self._collection(document_cls).find_one(query or {}, sort=[(field, -1)], projection={field: 1},
                                                         session=self.session)
        return (latest[field] if latest else 0) + 1

    def apply_owner_change(self, document_cls, lead_id: str, fields: dict, owner_version: int,
                           upsert: bool = False, also: dict | None = None) -> bool:
        """Set a lead's owner ``fields`` unless a newer owner is recorded already. Routing numbers
        every change of owner; lead_assigned and lead_reassigned travel on separate queues, so they
        may arrive in either order, and the highest number must win. False when it was older."""
        current = self._collection(document_cls).find_one({"_id": lead_id}, {"owner_version": 1},
                                                           session=self.session)
        if current is None and not upsert:
            return False
        if current is not None and (current.get("owner_version") or 0) >= owner_version:
            return False
        update = {**(also or {}), "$set": {**fields, "owner_version": owner_version}}
        self.update_one(document_cls, {"_id": lead_id}, update, upsert=upsert)
        return True

    def publish(self, event_type: str, subject_ids: dict, snapshot: dict) -> dict:
        return self.publish_many([(event_type, subject_ids, snapshot)])[0]

    def publish_many(self, events: list[tuple[str, dict, dict]]) -> list[dict]:
        """Events this transaction causes, published once it commits (all of a transaction's events
        travel in one outbox document, written by ``write_outbox`` just before the commit)."""
        trace_id = trace_context.get().get("trace_id", "")
        made = [make_event(event_type, subject_ids, snapshot, trace_id=trace_id)
                for event_type, subject_ids, snapshot in events]
        self.published.extend(made)
        return made

    def write_outbox(self) -> None:
        self.outbox_entry = outbox_document(self.published) if self.published else None
        if self.outbox_entry is not None:
            self.db[OUTBOX].insert_one(self.outbox_entry, session=self.session)

    def find(self, document_cls, query: dict, limit: int = 0) -> list:
        cursor = self._collection(document_cls).find(query, session=self.session, limit=limit)
        return [document_cls._from_son(raw) for raw in cursor]

    def insert_many(self, documents: list) -> None:
        if not documents:
            return
        for document in documents:
            document.validate()
        self._collection(type(documents[0])).insert_many(
            [document.to_mongo().to_dict() for document in documents], session=self.session)

    def replace_many(self, documents: list) -> None:
        if not documents:
            return
        for document in documents:
            document.validate()
        self._collection(type(documents[0])).bulk_write(
            [pymongo.ReplaceOne({"_id": son["_id"]}, son, upsert=True)
             for son in (document.to_mongo().to_dict() for document in documents)], session=self.session)


class Store(DependencyProvider):
    """The service's database. Subclasses list their mongoengine ``documents`` (all declared with
    ``meta = {"db_alias": <service name>}``) and may override ``get_dependency`` to inject a
    domain-shaped repository; by default the store itself is injected."""

    documents: tuple = ()
    # {document class: names of indexes an earlier version created and this one no longer keeps}:
    # dropped at start, since creating the declared indexes never removes the others, and an index
    # nobody reads still costs every write.
    retired_indexes: dict = {}

    def setup(self):
        self.alias = self.container.service_name
        mongoengine.connect(
            db=database_name(config["MONGODB_DB_PREFIX"], self.alias), host=config["MONGODB_URI"], alias=self.alias,
            tz_aware=True, uuidRepresentation="standard", serverSelectionTimeoutMS=5000)
        self.client = get_connection(self.alias)
        self.db = get_db(self.alias)
        self.db[OUTBOX].create_index([("created_at", 1), ("lease_until", 1)])
        # Retired first: an index replaced by a narrower one on the same keys (a partial one) cannot be
        # created beside the old one on every MongoDB version.
        for document_cls, names in self.retired_indexes.items():
            collection = document_cls._get_collection()
            for name in set(names) & set(collection.index_information()):
                log.info("dropping the index %s of %s: nothing reads it any more", name, collection.name)
                collection.drop_index(name)
        for document_cls in self.documents:
            document_cls.ensure_indexes()
        self.relay = OutboxRelay(self.container.service_name, self.db, config["AMQP_URI"],
                                 float(config.get("OUTBOX_POLL_SECONDS", 0.5)))

    def start(self):
        self.relay_thread = self.container.spawn_managed_thread(self.relay.run, identifier="outbox-relay")

    def stop(self):
        self.relay.stop()
        relay_thread = getattr(self, "relay_thread", None)
        if relay_thread is not None:
            relay_thread.wait()  # events already handed over are published before we disconnect
        mongoengine.disconnect(self.alias)

    def kill(self):
        self.stop()

    def check_ready(self) -> None:
        self.client.admin.command("ping")

    def get_dependency(self, worker_ctx):
        return self

    def find_ids(self, document_cls, ids) -> list:
        """Which of ``ids`` exist, read outside any transaction, ``IDS_PER_QUERY`` at a time."""
        found = []
        for chunk in id_chunks(list(dict.fromkeys(ids))):
            found += [raw["_id"] for raw in document_cls._get_collection().find({"_id": {"$in": chunk}}, {"_id": 1})]
        return found

    def _end_transaction_left_open(self, session) -> None:
        """End on the server whatever transaction the session's last attempt left there.

        A commit the server refused without running it (a failpoint does; so may a commit whose
        answer was lost) leaves the transaction open, holding its writes against every other writer
        until the server reaps it (60 s on MongoDB and on the embedded store). The next transaction
        on the same session would end it, but the session is going back to the driver's pool, where
        the next writer may well get another one. So one more transaction is started on it (a read
        of the outbox, which every service has) and aborted: starting it ends the one left open."""
        try:
            session.start_transaction()
            self.db[OUTBOX].find_one({"_id": None}, {"_id": 1}, session=session)
            session.abort_transaction()
        except pymongo.errors.PyMongoError:
            pass  # the store is gone, or already ended it: nothing is held either way

    def run_in_transaction(self, work):
        """Run ``work(uow)`` in one transaction and publish the events it added once committed.

        A transaction another writer beat is run again from the start, after a jittered back-off
        and at most ``MAX_TRANSACTION_ATTEMPTS`` times, each retry counted by reason: so every
        ``work`` must be safe to run twice (a read-then-write that checks what it read, an
        idempotency marker, stable ids)."""
        service = self.container.service_name
        with self.client.start_session() as session:
            # One session for every attempt: starting the next transaction on it ends the last
            # one on the server too, whatever state a failed commit left it in.
            for attempt in range(1, MAX_TRANSACTION_ATTEMPTS + 1):
                uow = UnitOfWork(self.db, session)
                try:
                    result = _attempt(session, work, uow)
                    break
                except (StaleWrite, CommitFailed, pymongo.errors.PyMongoError) as error:
                    reason = retry_reason(error)
                    cause = error.cause if isinstance(error, CommitFailed) else error
                    if reason is None or attempt == MAX_TRANSACTION_ATTEMPTS:
                        self._end_transaction_left_open(session)
                    if reason is None:
                        if cause is not error:
                            raise cause from None
                        raise
                    if attempt == MAX_TRANSACTION_ATTEMPTS:
                        raise StoreBusy(reason, attempt, cause) from cause
                    metrics.TRANSACTION_RETRIES.labels(service, reason).inc()
                    eventlet.sleep(retry_delay(attempt))
        metrics.TRANSACTIONS.labels(service).inc()
        if uow.outbox_entry is not None:
            self.relay.hand_off(uow.outbox_entry)
        for work_after in uow.after_commit_work:
            work_after()
        return result

    def run_once(self, event: dict, handler: str, work):
        """Run ``work(uow)`` for an event at most once per handler, however often it is delivered:
        the processed-event marker is written in the same transaction as the work it guards."""
        return self.run_once_each([event], handler, one_by_one(lambda uow, _: work(uow)))[0]

    def run_once_each(self, events: list[dict], handler: str, work_all) -> list:
        """``run_once`` for a batch of events in one transaction: ``work_all(uow, fresh)`` gets the
        events this handler has not processed before, in order, and returns one outcome for each; the
        answer has one outcome per event of ``events`` (DUPLICATE for those processed before, and for a
        second copy of an event within the batch). One bulk upsert both checks and writes the markers.
        ``one_by_one(work)`` runs ``work(uow, event)`` for each: the events' effects see each other's
        writes (one transaction), so two events about one lead apply as they would one after the other."""
        keys = [f"{handler}:{event['event_id']}" for event in events]

        def guarded(uow):
            now = utcnow()
            markers = uow.db[PROCESSED_EVENTS].bulk_write(
                [pymongo.UpdateOne({"_id": key}, {"$setOnInsert": {"event_type": event.get("event_type"), "at": now}},
                                   upsert=True) for key, event in zip(keys, events, strict=True)],
                ordered=True, session=uow.session)
            fresh = markers.upserted_ids  # {index in the batch: marker id} of the markers this wrote
            outcomes = iter(work_all(uow, [event for index, event in enumerate(events) if index in fresh]))
            return [next(outcomes) if index in fresh else DUPLICATE for index in range(len(events))]

        try:
            return self.run_in_transaction(guarded)
        except (DuplicateKeyError, pymongo.errors.BulkWriteError) as error:
            # A concurrent delivery of the same event committed first. Alone, it is a duplicate;
            # in a batch, the consumer runs the events one by one and each finds out.
            if len(events) == 1 and self.db[PROCESSED_EVENTS].find_one({"_id": keys[0]}):
                return [DUPLICATE]
            raise error


def one_by_one(work):
    """The ``work_all`` of ``Store.run_once_each`` that runs ``work(uow, event)`` for each event in turn."""
    return lambda uow, events: [work(uow, event) for event in events]
