"""Capture's repository over its own database."""
from dataclasses import dataclass

from pymongo.errors import DuplicateKeyError

from services.capture import domain, events
from services.capture.mappers import lead_from_document, lead_to_document
from services.capture.models import ContactKey, IdempotencyKey, LeadDocument
from services.common.events import utcnow
from services.common.store import Store, get_or_not_found


@dataclass(frozen=True)
class Submission:
    lead: object
    created: bool
    merged: bool


class LeadRepository:
    # A concurrent capture of the same person (or the same idempotency key) can make one transaction
    # fail on a unique key; trying again then finds the other's lead and merges into it.
    TRIES = 3

    def __init__(self, store: Store):
        self.store = store

    def submit(self, lead, idempotency_key: str, captured_by: str) -> Submission:
        """Store a capture atomically with its event: a new lead (lead_captured), or, when its email or
        phone is already known, a merge into that lead (lead_merged) that keeps every touch.

        With an idempotency key, a repeated submission returns the first one's lead and changes nothing.
        """
        scoped_key = f"{captured_by}:{idempotency_key}" if idempotency_key else ""
        touch = domain.touch_of(lead, captured_by)

        def work(uow) -> Submission:
            if scoped_key:
                earlier = uow.find_one(IdempotencyKey, {"_id": scoped_key})
                if earlier:
                    return Submission(self._lead(uow, earlier.lead_id), created=False, merged=False)
            claims = {key: uow.find_one(ContactKey, {"_id": key}) for key in domain.contact_keys(lead)}
            # Email first: it identifies a person more surely than a shared phone line.
            existing_id = next((claim.lead_id for claim in claims.values() if claim), None)
            unclaimed = [key for key, claim in claims.items() if claim is None]
            if existing_id is None:
                document = lead_to_document(lead, captured_by)
                document.touches = [touch]
                uow.insert(document)
                self._claim(uow, unclaimed, lead.lead_id)
                uow.publish(*events.lead_captured(lead))
                result = Submission(lead, created=True, merged=False)
            else:
                existing = uow.find_one(LeadDocument, {"_id": existing_id})
                merged = domain.merge_into(lead_from_document(existing), lead)
                document = lead_to_document(merged, existing.captured_by)
                document.touches = [*existing.touches, touch]
                uow.replace(document)
                # A newly learnt phone becomes the lead's; one another lead already has stays with it.
                self._claim(uow, unclaimed, existing_id)
                uow.publish(*events.lead_merged(merged, touch))
                result = Submission(merged, created=False, merged=True)
            if scoped_key:
                uow.insert(IdempotencyKey(id=scoped_key, lead_id=result.lead.lead_id, created_at=utcnow()))
            return result

        for attempt in range(self.TRIES):
            try:
                return self.store.run_in_transaction(work)
            except DuplicateKeyError:
                if attempt == self.TRIES - 1:
                    raise

    @staticmethod
    def _claim(uow, keys: list[str], lead_id: str) -> None:
        for key in keys:
            uow.insert(ContactKey(id=key, lead_id=lead_id))

    @staticmethod
    def _lead(uow, lead_id: str):
        return lead_from_document(uow.find_one(LeadDocument, {"_id": lead_id}))

    def get(self, lead_id: str):
        document = get_or_not_found(LeadDocument, lead_id, "lead")
        return lead_from_document(document)


class CaptureStore(Store):
    documents = (LeadDocument, IdempotencyKey, ContactKey)

    def get_dependency(self, worker_ctx):
        return LeadRepository(self)
