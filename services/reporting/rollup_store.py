"""Reporting's roll-ups in the store: records marked as they change, their contributions applied in
batches, and the rows a report reads.

Projecting an event writes the record (its lead's progress, its opportunity's snapshot) as before and
then marks it in a queue. The applier takes a batch of marked records, reads each one and what it last
contributed, and in one transaction adds the merged differences to the roll-up documents and records
the new inputs. Then it removes each mark unless it was marked again meanwhile (its token changed):
  * a record changed after the transaction read it is marked after that change, so it is applied again;
  * a crash before the commit leaves the marks, and one after it leaves marks whose difference is nil;
  * a crash between a record's write and its mark leaves the event unacknowledged: its redelivery marks.
So the roll-ups always converge on the sum of every record's contribution, which is what a report
computed from the records would count. One applier runs per process at a time (the lock), and two
replicas' appliers are kept apart by their transactions (the loser runs again).

Reports ask for a catch-up before they read, so a report sees every event projected before it was
asked, as long as the backlog fits in the catch-up's time budget; the timer applies it otherwise.
"""
import time
import uuid
from collections import defaultdict
from decimal import Decimal

import eventlet.semaphore
import pymongo

from services.common.compute import in_slices
from services.common.events import utcnow
from services.common.store import id_chunks
from services.reporting import rollups
from services.reporting.models import (EventLogDocument, LeadProgressDocument, OpportunityFactDocument,
                                       RollupAppliedDocument, RollupDocument, RollupQueueDocument,
                                       RollupStateDocument)

ROLLUP_VERSION = 4  # raise with any change to rollups.contribution: the roll-ups are then rebuilt
BATCH = 2000  # records per transaction: records of one day share most of their documents
PENDING_COUNTED_UP_TO = 10_000
LEAD_INPUTS = ("rep_id", "team", "source", "medium", "campaign", "captured_at", "scored_at", "qualified_at",
               "assigned_at", "contacted_at", "sales_qualified_at", "converted_at", "won_at", "first_response_due_at",
               "task_completed_at", "sla_warned_at", "sla_breached_at", "reassigned_at")
FACT_INPUTS = ("status", "owner_id", "manager_id", "team", "office", "product", "source", "medium", "campaign",
               "pipeline_id", "stage_id", "currency", "probability", "forecast_category", "engaged_at", "closed_at",
               "close_date", "lost_reason", "lead_id", "account_id", "account_name")
_applying = eventlet.semaphore.Semaphore()


def _decoded(value):
    """Stored rows as numbers: sums of money are kept as decimal text (exact at any size, and read back
    in well under a microsecond, where a Decimal128 takes about twenty)."""
    if isinstance(value, dict):
        return {name: _decoded(inner) for name, inner in value.items()}
    return Decimal(value) if isinstance(value, str) else value


def _encoded(value):
    if isinstance(value, dict):
        return {name: _encoded(inner) for name, inner in value.items()}
    return str(value) if isinstance(value, Decimal) else value


def _moves(raw: dict) -> list:
    return [{"to": move.get("to", ""), "at": move["at"]} for move in raw.get("moves") or ()]


def _amount_text(raw: dict):
    amount = raw.get("amount")
    return str(amount.to_decimal()) if amount is not None else None


class RollupStore:
    def __init__(self, store):
        self.store = store
        self.queue = RollupQueueDocument._get_collection()
        self.applied = RollupAppliedDocument._get_collection()
        self.rollups = RollupDocument._get_collection()
        self.state = RollupStateDocument._get_collection()

    # ---- marking -----------------------------------------------------------------------------------

    def mark(self, keys) -> None:
        """Queue records ("L:<lead>", "O:<opportunity>", "A:<event>") whose contribution may change."""
        keys = sorted(set(keys))
        if keys:
            now = utcnow()
            self.queue.bulk_write([pymongo.UpdateOne({"_id": key}, {"$set": {"token": uuid.uuid4().hex, "at": now}},
                                                     upsert=True) for key in keys], ordered=False)

    def mark_everything(self) -> int:
        """Queue every record (the roll-ups are being built over records that already exist)."""
        marked = 0
        sources = ((LeadProgressDocument, "L", {}), (OpportunityFactDocument, "O", {}),
                   (EventLogDocument, "A", {"event_type": "activity_logged"}))
        for document_cls, kind, query in sources:
            ids = [raw["_id"] for raw in document_cls._get_collection().find(query, {"_id": 1})]
            for chunk in id_chunks(ids, 1000):
                self.mark(f"{kind}:{identifier}" for identifier in chunk)
            marked += len(ids)
        return marked

    # ---- state -------------------------------------------------------------------------------------

    def ensure_current(self) -> None:
        """Build the roll-ups over the records already stored when this version first starts (an
        upgrade): until the queue is empty, reports read the records."""
        state = self.state.find_one({"_id": "rollups"})
        if state is not None and state.get("version") == ROLLUP_VERSION:
            return
        self.rebuild()

    def rebuild(self) -> int:
        """Start over from the records: reports read the records until every one is applied."""
        # "marking": the queue may run dry between two marks; the roll-ups are not ready before the last.
        self.state.update_one({"_id": "rollups"}, {"$set": {"version": ROLLUP_VERSION, "seeding": True,
                                                            "marking": True}}, upsert=True)
        with _applying:
            self.clear()
        try:
            return self.mark_everything()
        finally:
            self.state.update_one({"_id": "rollups"}, {"$set": {"marking": False}})

    def clear(self) -> None:
        for collection in (self.rollups, self.applied, self.queue):
            collection.delete_many({})

    def marked_before(self, moment) -> bool:
        """Whether a record marked before ``moment`` still waits (a scan of the queue, which the
        applier keeps short)."""
        return self.queue.find_one({"at": {"$lt": moment}}, {"_id": 1}) is not None

    def pending(self, up_to: int = PENDING_COUNTED_UP_TO) -> int:
        """Records marked and not applied yet, counted up to ``up_to`` (a count reads the whole queue
        on the embedded store, which holds every record during a rebuild)."""
        return len(list(self.queue.find({}, {"_id": 1}).limit(up_to)))

    def ready(self) -> bool:
        state = self.state.find_one({"_id": "rollups"}, {"seeding": 1})
        return state is not None and not state.get("seeding")

    # ---- applying ----------------------------------------------------------------------------------

    def catch_up(self, budget_seconds: float) -> int:
        """Apply marked records, batch after batch, until none is left or the budget is spent."""
        deadline = time.monotonic() + budget_seconds
        done = 0
        with _applying:
            while True:
                applied = self.apply_batch()
                done += applied
                if applied < BATCH or time.monotonic() >= deadline:
                    break
            if applied < BATCH and self.queue.find_one({}, {"_id": 1}) is None:
                # Every record there was is applied: built over the earlier records, if it was building.
                self.state.update_one({"_id": "rollups", "seeding": True, "marking": False},
                                      {"$set": {"seeding": False}})
        return done

    def apply_batch(self) -> int:
        entries = {raw["_id"]: raw["token"] for raw in self.queue.find({}, {"token": 1}).limit(BATCH)}
        if not entries:
            return 0
        keys = sorted(entries)

        def work(uow):
            session = uow.session
            current = self.inputs_of(keys, session)
            before = {}
            for chunk in id_chunks(keys):
                before.update({raw["_id"]: raw.get("inputs") for raw in
                               self.applied.find({"_id": {"$in": chunk}}, session=session)})
            delta = {}
            for key in in_slices(keys):  # a batch is seconds of arithmetic: health must still answer
                new = rollups.contribution(key[0], current.get(key))
                if before.get(key) is not None:  # otherwise nothing to take back (most of a rebuild)
                    new = rollups.difference(new, rollups.contribution(key[0], before[key]))
                rollups.merge_into(delta, new)
            if delta:
                # Read, add up, replace: the embedded store spends ~0.15 ms on each path of an $inc, and
                # a batch changes tens of thousands of paths in a few hundred documents. Inside the
                # transaction, a document another applier changed meanwhile is a write conflict.
                slots = sorted(delta)
                stored = {}
                for chunk in id_chunks(slots):
                    stored.update({raw["_id"]: raw for raw in self.rollups.find({"_id": {"$in": chunk}},
                                                                                 session=session)})
                self.rollups.bulk_write([pymongo.ReplaceOne({"_id": slot}, {"k": slot, "r": _encoded(rollups.added(
                    _decoded(stored.get(slot, {}).get("r") or {}), delta[slot]))}, upsert=True)
                    for slot in in_slices(slots, 10)], ordered=False, session=session)
            self.applied.bulk_write([
                pymongo.ReplaceOne({"_id": key}, {"inputs": current[key]}, upsert=True) if current.get(key) is not None
                else pymongo.DeleteOne({"_id": key}) for key in keys], ordered=False, session=session)

        self.store.run_in_transaction(work)
        self.queue.bulk_write([pymongo.DeleteOne({"_id": key, "token": token}) for key, token in entries.items()],
                              ordered=False)
        return len(entries)

    def inputs_of(self, keys: list, session) -> dict:
        """{key: the inputs of that record's contribution, or None when it no longer exists}."""
        by_kind = defaultdict(list)
        for key in keys:
            by_kind[key[0]].append(key[2:])
        found = {}
        found.update(self._lead_inputs(by_kind["L"], session))
        found.update(self._fact_inputs(by_kind["O"], session))
        found.update(self._activity_inputs(by_kind["A"], session))
        return found

    def _lead_inputs(self, lead_ids: list, session) -> dict:
        progress = LeadProgressDocument._get_collection()
        facts = OpportunityFactDocument._get_collection()
        found = {}
        for chunk in id_chunks(lead_ids):
            leads = {raw["_id"]: raw for raw in progress.find({"_id": {"$in": chunk}}, session=session)}
            converted = [lead_id for lead_id, raw in leads.items() if raw.get("converted_at") is not None]
            deals = defaultdict(list)
            if converted:
                for raw in facts.find({"lead_id": {"$in": converted}},
                                      {"lead_id": 1, "status": 1, "currency": 1, "amount": 1, "pipeline_id": 1,
                                       "moves": 1}, session=session):
                    deals[raw["lead_id"]].append(raw)
            for lead_id, raw in leads.items():
                inputs = {name: raw.get(name) for name in LEAD_INPUTS if raw.get(name) not in (None, "")}
                inputs["facts"] = [{"status": d.get("status") or "", "currency": d.get("currency") or "",
                                    "amount": _amount_text(d), "pipeline_id": d.get("pipeline_id") or "",
                                    "moves": _moves(d)} for d in deals.get(lead_id, ())]
                found[f"L:{lead_id}"] = inputs
        return found

    def _fact_inputs(self, opportunity_ids: list, session) -> dict:
        facts = OpportunityFactDocument._get_collection()
        progress = LeadProgressDocument._get_collection()
        found = {}
        for chunk in id_chunks(opportunity_ids):
            raws = list(facts.find({"_id": {"$in": chunk}}, session=session))
            lead_ids = sorted({raw["lead_id"] for raw in raws if raw.get("lead_id")})
            wins = {raw["_id"]: raw.get("win_probability") for raw in progress.find(
                {"_id": {"$in": lead_ids}}, {"win_probability": 1}, session=session)} if lead_ids else {}
            for raw in raws:
                inputs = {name: raw.get(name) for name in FACT_INPUTS if raw.get(name) not in (None, "")}
                inputs.update(opportunity_id=raw["_id"], amount=_amount_text(raw), moves=_moves(raw),
                              win=wins.get(raw.get("lead_id") or ""))
                found[f"O:{raw['_id']}"] = inputs
        return found

    def _activity_inputs(self, event_ids: list, session) -> dict:
        log = EventLogDocument._get_collection()
        found = {}
        for chunk in id_chunks(event_ids):
            for raw in log.find({"_id": {"$in": chunk}, "event_type": "activity_logged"},
                                {"occurred_at": 1, "payload.logged_by": 1}, session=session):
                found[f"A:{raw['_id']}"] = {"by": raw["payload"].get("logged_by") or "", "at": raw["occurred_at"]}
        return found

    # ---- reading -----------------------------------------------------------------------------------

    def rows(self, family: str, dimension: tuple[str, str], grouping: str, first, last) -> dict:
        """{group value: metrics} summed over the documents of a period (days ``first``..``last``,
        either may be None) for one filter dimension (name, value; ("", "") for none)."""
        total, name = {}, rollups.field_name(grouping)
        ranges = rollups.day_ranges if family in rollups.DAY_ONLY_FAMILIES else rollups.period_ranges
        for level, low, high in ranges(first, last):
            prefix = rollups.slot_prefix(family, dimension[0], dimension[1], level)
            for raw in self.rollups.find({"k": {"$gte": prefix + low, "$lte": prefix + high}}, {f"r.{name}": 1}):
                rollups.add_rows(total, (raw.get("r") or {}).get(name) or {})
        return total
