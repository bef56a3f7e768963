"""Opportunity's repository."""
from services.common.errors import NotFound
from services.common.events import parse_iso, utcnow
from services.common.store import Store, get_or_not_found
from services.opportunity import events
from services.opportunity.domain import is_contact
from services.opportunity.mappers import activity_from_document, activity_to_document, ownership_from_document
from services.opportunity.models import ActivityDocument, LeadOwnershipDocument, PipelineVersionDocument
from services.opportunity.pipeline import BUILTIN_NEW_BUSINESS


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


    # ---- pipelines -------------------------------------------------------------------------------

    def put_pipeline(self, definition: dict, created_by: str) -> PipelineVersionDocument:
        """Store the next version of the pipeline the document names, and announce it."""
        pipeline_id = definition["id"]

        def work(uow):
            latest = uow.db[PipelineVersionDocument._get_collection_name()].find_one(
                {"pipeline_id": pipeline_id}, sort=[("version", -1)], projection={"version": 1}, session=uow.session)
            version = (latest["version"] if latest else 0) + 1
            document = PipelineVersionDocument(id=f"{pipeline_id}@{version}", pipeline_id=pipeline_id,
                                               version=version, definition=definition, created_at=utcnow(),
                                               created_by=created_by)
            uow.insert(document)
            uow.publish(*events.pipeline_changed(pipeline_id, version, created_by))
            return document
        return self.store.run_in_transaction(work)

    def pipeline_version(self, pipeline_id: str, version: int = 0):
        """One version (0: the live one). The built-in new-business pipeline is live, as version 0,
        until a company stores its own; None when no such pipeline exists."""
        query = PipelineVersionDocument.objects(pipeline_id=pipeline_id)
        document = query.filter(version=version).first() if version else query.order_by("-version").first()
        if document is None and version:
            raise NotFound("pipeline version", f"{pipeline_id}@{version}")
        if document is None and pipeline_id == BUILTIN_NEW_BUSINESS["id"]:
            return PipelineVersionDocument(id=f"{pipeline_id}@0", pipeline_id=pipeline_id, version=0,
                                           definition=BUILTIN_NEW_BUSINESS, created_by="")
        if document is None:
            raise NotFound("pipeline", pipeline_id)
        return document

    def live_pipelines(self, offset: int, limit: int) -> list:
        ids = sorted(set(PipelineVersionDocument.objects.distinct("pipeline_id")) | {BUILTIN_NEW_BUSINESS["id"]})
        return [self.pipeline_version(pipeline_id) for pipeline_id in ids[offset:offset + limit]]


class OpportunityStore(Store):
    documents = (LeadOwnershipDocument, ActivityDocument, PipelineVersionDocument)

    def get_dependency(self, worker_ctx):
        return ActivityRepository(self)
