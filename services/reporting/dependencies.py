"""Reporting's projection store."""
import pymongo.errors
from bson.decimal128 import Decimal128

from services.common.events import parse_iso
from services.common.store import Store
from services.reporting.domain import FUNNEL_ORDER, opportunity_fact, source_of, stage_field
from services.reporting.models import ConfigChangeDocument, LeadProgressDocument, OpportunityFactDocument


class ProgressProjection:
    def __init__(self, store: Store):
        self.store = store

    def apply(self, event: dict, moments: dict) -> None:
        """Record the moments an event fixes ({progress field: payload key}) for its lead.

        Idempotent by construction, so it needs no processed-event marker nor transaction (a quarter
        of the writes): the same event always sets the same fields to the same values, and a moment
        only moves forward ($max), so redelivery and any arrival order give one result (the latest
        touch or activity wins, whichever arrives last).
        Projections that accumulate (sums, counters) must go through ``Store.run_once`` instead."""
        latest = {name: parse_iso(event[key]) for name, key in moments.items()}
        update = {"$max": latest}
        labels = {}
        source = source_of(event)
        if source:
            labels["source"] = source
        if event.get("rep_id"):
            labels["rep_id"] = event["rep_id"]
        if labels:
            update["$set"] = labels
        LeadProgressDocument._get_collection().update_one({"_id": event["lead_id"]}, update, upsert=True)

    def project_opportunity(self, event: dict) -> None:
        """Keep the newest snapshot of the event's opportunity. Idempotent and order-proof without a
        transaction: a write only lands over an older version, and when a newer one is stored the
        upsert's insert collides with it and is dropped."""
        fact = opportunity_fact(event)
        if fact["amount"] is not None:
            fact["amount"] = Decimal128(fact["amount"])
        collection = OpportunityFactDocument._get_collection()
        try:
            collection.update_one({"_id": event["opportunity_id"], "version": {"$lt": fact["version"]}},
                                  {"$set": fact}, upsert=True)
        except pymongo.errors.DuplicateKeyError:
            pass  # a newer (or the same) version is stored already

    def record_config_change(self, event: dict, source_service: str) -> None:
        """Keyed by event id, so a redelivered change is one record."""
        ConfigChangeDocument._get_collection().update_one({"_id": event["event_id"]}, {"$setOnInsert": {
            "kind": event["kind"], "version": event["version"], "changed_by": event.get("changed_by", ""),
            "occurred_at": parse_iso(event["occurred_at"]), "source_service": source_service}}, upsert=True)

    def stage_counts(self, source: str) -> dict:
        base = {"source": source} if source else {}
        collection = LeadProgressDocument._get_collection()
        return {stage: collection.count_documents({**base, stage_field(stage): {"$ne": None}})
                for stage in FUNNEL_ORDER}


class ReportingStore(Store):
    documents = (LeadProgressDocument, ConfigChangeDocument, OpportunityFactDocument)

    def get_dependency(self, worker_ctx):
        return ProgressProjection(self)
