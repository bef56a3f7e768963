"""Capture's repository over its own database."""
from pymongo.errors import DuplicateKeyError

from services.capture import events
from services.capture.mappers import lead_from_document, lead_to_document
from services.capture.models import IdempotencyKey, LeadDocument
from services.common.events import utcnow
from services.common.store import Store, get_or_not_found


class LeadRepository:
    def __init__(self, store: Store):
        self.store = store

    def submit(self, lead, idempotency_key: str, captured_by: str):
        """Store a new lead and its lead_captured event atomically; (lead, created).

        With an idempotency key, a repeated submission returns the first lead and creates nothing.
        """
        scoped_key = f"{captured_by}:{idempotency_key}" if idempotency_key else ""

        def work(uow):
            if scoped_key:
                # Written first: a key used before fails here, before anything else is written.
                uow.insert(IdempotencyKey(id=scoped_key, lead_id=lead.lead_id, created_at=utcnow()))
            uow.insert(lead_to_document(lead, captured_by))
            uow.publish(*events.lead_captured(lead))
            return lead, True

        try:
            return self.store.run_in_transaction(work)
        except DuplicateKeyError:
            earlier = IdempotencyKey.objects(id=scoped_key).first() if scoped_key else None
            if earlier is None:
                raise
            return self.get(earlier.lead_id), False

    def get(self, lead_id: str):
        document = get_or_not_found(LeadDocument, lead_id, "lead")
        return lead_from_document(document)


class CaptureStore(Store):
    documents = (LeadDocument, IdempotencyKey)

    def get_dependency(self, worker_ctx):
        return LeadRepository(self)
