"""Reporting's projection store."""
from services.common.events import parse_iso
from services.common.store import Store
from services.reporting.domain import FUNNEL_ORDER, Stage, source_of
from services.reporting.models import LeadProgressDocument


class ProgressProjection:
    def __init__(self, store: Store):
        self.store = store

    def apply_once(self, event: dict, handler: str, stage: Stage, moment_key: str):
        """Events may arrive in any order; each only sets its own fields, so the result is the same."""
        update = {f"{stage.value}_at": parse_iso(event[moment_key])}
        source = source_of(event)
        if source:
            update["source"] = source
        if event.get("rep_id"):
            update["rep_id"] = event["rep_id"]

        def work(uow):
            uow.update_one(LeadProgressDocument, {"_id": event["lead_id"]}, {"$set": update}, upsert=True)
        return self.store.run_once(event, handler, work)

    def stage_counts(self, source: str) -> dict:
        base = {"source": source} if source else {}
        collection = LeadProgressDocument._get_collection()
        return {stage: collection.count_documents({**base, f"{stage.value}_at": {"$ne": None}})
                for stage in FUNNEL_ORDER}


class ReportingStore(Store):
    documents = (LeadProgressDocument,)

    def get_dependency(self, worker_ctx):
        return ProgressProjection(self)
