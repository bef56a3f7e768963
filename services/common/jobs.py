"""Background jobs that walk a collection in batches (rescoring every lead, rebuilding projections):
a job document with a cursor, progress counts and a lease. Whichever replica's timer claims the job
works on it for a while and moves the cursor after each batch, so a crashed replica's job resumes
from its last batch once the lease runs out, and two replicas never work on one job at once."""
from datetime import timedelta

from mongoengine import DateTimeField, Document, IntField, StringField

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


def claim(job_cls):
    """The oldest running job nobody holds (a crashed holder's lease expires), leased to the caller."""
    now = utcnow()
    raw = job_cls._get_collection().find_one_and_update(
        {"status": "running", "lease_until": {"$lte": now}}, {"$set": {"lease_until": now + JOB_LEASE}},
        sort=[("created_at", 1)], return_document=True)
    return job_cls._from_son(raw) if raw else None


def advance(job_cls, job_id: str, processed_ids: list, **counts) -> None:
    """Record a batch: the cursor moves past it and the lease is renewed. An empty batch finishes
    the job. ``counts`` are further counters to add (e.g. changed=3)."""
    now = utcnow()
    update = {"$inc": {"processed": len(processed_ids), **counts}, "$set": {"lease_until": now + JOB_LEASE}}
    if processed_ids:
        update["$set"]["cursor"] = processed_ids[-1]
    else:
        update["$set"].update({"status": "done", "finished_at": now, "lease_until": now})
    job_cls._get_collection().update_one({"_id": job_id}, update)


def release(job_cls, job_id: str) -> None:
    """Give a running job back at the end of a turn, so the next timer tick of any replica takes it
    up at once instead of waiting for the lease to run out."""
    job_cls._get_collection().update_one({"_id": job_id, "status": "running"}, {"$set": {"lease_until": utcnow()}})
