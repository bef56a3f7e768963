"""Background jobs that walk a collection in batches (rescoring every lead, rebuilding projections):
a job document with a cursor, progress counts and a lease. Whichever replica's timer claims the job
works on it for a while and moves the cursor after each batch, so a crashed replica's job resumes
from its last batch once the lease runs out, and two replicas never work on one job at once."""
import uuid
from contextlib import contextmanager
from datetime import timedelta

import pymongo.errors
from mongoengine import DateTimeField, Document, IntField, StringField

from services.common.errors import FailedPrecondition
from services.common.events import utcnow

JOB_LEASE = timedelta(seconds=60)


class BatchJobDocument(Document):
    """Fields every batch job has; a service's job document adds what it needs."""

    meta = {"abstract": True, "indexes": [("status", "lease_until")]}
    id = StringField(primary_key=True)
    status = StringField(default="running")  # running | done
    total = IntField(default=0)
    processed = IntField(default=0)
    cursor = StringField(default="")  # last id handled: a crashed replica's job resumes after it
    lease_until = DateTimeField(required=True)
    requested_by = StringField(default="")
    created_at = DateTimeField(required=True)
    finished_at = DateTimeField()


def refuse_while_running(job_cls, kind: str) -> None:
    """FailedPrecondition naming the running job of this kind, if there is one."""
    running = _oldest_running(job_cls)
    if running is not None:
        raise _still_running(running, kind)


def start(job: BatchJobDocument, kind: str) -> BatchJobDocument:
    """Store a new running job, unless a job of its kind is running: two would do the same work twice
    over, and a caller repeating a request (or a client with a bug) could pile up any number of them.
    Refused with FailedPrecondition naming the running job. Two requests racing both insert, then
    both see the same oldest running job; the other one withdraws."""
    job_cls = type(job)
    refuse_while_running(job_cls, kind)
    job.save(force_insert=True)
    running = _oldest_running(job_cls)
    if running.id != job.id:
        job.delete()
        raise _still_running(running, kind)
    return job


def _oldest_running(job_cls):
    return job_cls.objects(status="running").order_by("created_at", "id").first()


def _still_running(running: BatchJobDocument, kind: str) -> FailedPrecondition:
    return FailedPrecondition(f"{kind} {running.id} is still running ({running.processed} of {running.total} done, "
                              f"started by {running.requested_by or 'the system'}); follow it, and start another "
                              f"once it is done")


@contextmanager
def exclusive(collection, name: str, kind: str, holder: str, lease: timedelta):
    """Run the block only if no one else (on any replica) is running ``name``, for synchronous work such
    as training a model. The hold lapses after ``lease`` if its holder dies. Refused with
    FailedPrecondition naming who holds it."""
    now, token = utcnow(), uuid.uuid4().hex
    try:
        # Inserts the hold, or takes over a lapsed one; a live hold makes the upsert collide on _id.
        collection.update_one({"_id": name, "until": {"$lte": now}},
                              {"$set": {"until": now + lease, "holder": holder, "since": now, "token": token}},
                              upsert=True)
    except pymongo.errors.DuplicateKeyError:
        held = collection.find_one({"_id": name}) or {}
        raise FailedPrecondition(f"{kind} is already running (started by {held.get('holder') or 'someone'} at "
                                 f"{held.get('since')}); try again once it is done") from None
    try:
        yield
    finally:
        collection.update_one({"_id": name, "token": token}, {"$set": {"until": utcnow()}})


def claim(job_cls):
    """The oldest running job nobody holds (a crashed holder's lease expires), leased to the caller."""
    now = utcnow()
    raw = job_cls._get_collection().find_one_and_update(
        {"status": "running", "lease_until": {"$lte": now}}, {"$set": {"lease_until": now + JOB_LEASE}},
        sort=[("created_at", 1)], return_document=True)
    return job_cls._from_son(raw) if raw else None


def advance(job_cls, job_id: str, processed_ids: list, cursor: str | None = None, **counts) -> None:
    """Record a batch: the cursor moves past it (to its last id, or to ``cursor`` for a job that
    walks something other than ids) and the lease is renewed. An empty batch finishes the job.
    ``counts`` are further counters to add (e.g. changed=3)."""
    now = utcnow()
    update = {"$inc": {"processed": len(processed_ids), **counts}, "$set": {"lease_until": now + JOB_LEASE}}
    if processed_ids:
        update["$set"]["cursor"] = processed_ids[-1] if cursor is None else cursor
    else:
        update["$set"].update({"status": "done", "finished_at": now, "lease_until": now})
    job_cls._get_collection().update_one({"_id": job_id}, update)


def release(job_cls, job_id: str) -> None:
    """Give a running job back at the end of a turn, so the next timer tick of any replica takes it
    up at once instead of waiting for the lease to run out."""
    job_cls._get_collection().update_one({"_id": job_id, "status": "running"}, {"$set": {"lease_until": utcnow()}})
