"""Opportunity's repository."""
from services.common.events import parse_iso
from services.common.store import Store, get_or_not_found
from services.opportunity import events
from services.opportunity.domain import is_contact
from services.opportunity.mappers import activity_from_document, activity_to_document, ownership_from_document
from services.opportunity.models import ActivityDocument, LeadOwnershipDocument


class ActivityRepository:
    def __init__(self, store: Store):
        self.store = store

    def record_assignment_once(self, event: dict, handler: str) -> None:
        def work(uow):
            # Reassignment moves ownership (newest change wins); an earlier first contact stays recorded.
            moment = event.get("assigned_at") or event.get("reassigned_at")
            uow.apply_owner_change(LeadOwnershipDocument, event["lead_id"], {
                "rep_id": event["rep_id"], "team": event.get("team", ""), "assigned_at": parse_iso(moment)},
                int(event.get("owner_version") or 1), upsert=True)
        return self.store.run_once(event, handler, work)

    def ownership(self, lead_id: str):
        document = get_or_not_found(LeadOwnershipDocument, lead_id, "lead (assigned to sales)")
        return ownership_from_document(document)

    def log(self, activity, ownership) -> bool:
        """Store the activity; a lead's first contact also stamps the lead and emits lead_contacted,
        in the same transaction. True when this was the first contact."""
        def work(uow):
            uow.insert(activity_to_document(activity))
            if not is_contact(activity):
                return False
            first = uow.update_one(LeadOwnershipDocument, {"_id": activity.lead_id, "contacted_at": None},
                                   {"$set": {"contacted_at": activity.occurred_at}}).modified_count == 1
            if first:
                uow.publish(*events.lead_contacted(activity, ownership))
            return first
        return self.store.run_in_transaction(work)

    def list(self, lead_id: str, offset: int, limit: int):
        return [activity_from_document(d) for d in ActivityDocument.objects(lead_id=lead_id)
                .order_by("-occurred_at", "-logged_at").skip(offset).limit(limit)]


class OpportunityStore(Store):
    documents = (LeadOwnershipDocument, ActivityDocument)

    def get_dependency(self, worker_ctx):
        return ActivityRepository(self)
