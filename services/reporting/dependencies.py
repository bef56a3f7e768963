"""Reporting's projection store."""
from services.common.events import parse_iso
from services.common.store import Store
from services.reporting.domain import FUNNEL_ORDER, Stage, source_of
from services.reporting.models import LeadProgressDocument


class ProgressProjection:
    def __init__(self, store: Store):
        self.store = store

    def apply(self, event: dict, stage: Stage, moment_key: str) -> None:
        """Record that a lead reached a stage.

        Idempotent by construction, so it needs no processed-event marker nor transaction (a quarter
        of the writes): the same event always sets the same fields to the same values, and events
        of one lead touch different fields, so redelivery and any arrival order give one result.
        Projections that accumulate (sums, counters) must go through ``Store.run_once`` instead."""
        update = {f"{stage.value}_at": parse_iso(event[moment_key])}
        source = source_of(event)
        if source:
            update["source"] = source
        if event.get("rep_id"):
            update["rep_id"] = event["rep_id"]

        LeadProgressDocument._get_collection().update_one({"_id": event["lead_id"]}, {"$set": update}, upsert=True)

    def stage_counts(self, source: str) -> dict:
        base = {"source": source} if source else {}
        collection = LeadProgressDocument._get_collection()
        return {stage: collection.count_documents({**base, f"{stage.value}_at": {"$ne": None}})
                for stage in FUNNEL_ORDER}


class ReportingStore(Store):
    documents = (LeadProgressDocument,)

    def get_dependency(self, worker_ctx):
        return ProgressProjection(self)
