"""Reporting's store: the event log, the projections built from it, and the reads reports make."""
import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from decimal import Decimal

import pymongo.errors
from bson.decimal128 import Decimal128

from services.common import jobs, metrics
from services.common.compute import in_slices
from services.common.errors import FailedPrecondition
from services.common.events import parse_iso, utcnow
from services.common.store import Store, get_or_not_found, id_chunks
from services.reporting.domain import (FUNNEL_ORDER, OPPORTUNITY_SNAPSHOT_EVENTS, PROJECTED_MOMENTS, attribution_of,
                                       labels_of, opportunity_fact, project_lead, source_of, stage_field, stage_moves,
                                       timeline_order)
from services.reporting.models import (EVENT_LOG_RETIRED_INDEXES, LEAD_PROGRESS_RETIRED_INDEXES, CampaignCostDocument,
                                       ConfigChangeDocument, EventLogDocument, LeadProgressDocument,
                                       OpportunityFactDocument, QuotaDocument, RebuildJobDocument,
                                       RollupAppliedDocument, RollupDocument, RollupQueueDocument,
                                       RollupStateDocument, StreamHeadDocument, StreamPageDocument,
                                       WebhookDeadLetterDocument, WebhookSubscriptionDocument)
from services.reporting.rollup_store import RollupStore
from services.reporting.stream_store import EventStreamStore
from services.reporting.webhook_store import WebhookStore
from services.reporting.reports import FACT_FILTERS, LEAD_FILTERS, Fact, LeadRow, QuotaInput

MARKING_LEASE = timedelta(hours=1)
REBUILD_BATCH = 10_000  # events read per batch of whole leads
ONE_BY_ONE_BATCH = 500  # events of no lead, projected one by one
ONE_BY_ONE = 300  # up to this many leads, their opportunities are looked up one by one
PROJECTIONS = (LeadProgressDocument, OpportunityFactDocument, ConfigChangeDocument)
FACT_FIELDS = ("status", "stage_id", "owner_id", "manager_id", "team", "office", "product", "source", "account_id",
               "account_name", "pipeline_id", "lead_id", "amount", "currency", "probability", "forecast_category",
               "engaged_at", "closed_at", "lost_reason", "moves")
LEAD_LABELS = ("source", "medium", "campaign", "rep_id", "team")
LEAD_ROW_FIELDS = LEAD_LABELS + ("captured_at", "qualified_at", "assigned_at", "contacted_at", "converted_at",
                                 "first_response_due_at", "task_completed_at", "sla_warned_at", "sla_breached_at",
                                 "reassigned_at")


def progress_writes(events: list[tuple[dict, dict]]) -> list[pymongo.UpdateOne]:
    """The writes that record the moments each event fixes ({progress field: payload key}) for its
    lead, for (event, moments) pairs in event order: one write per lead, however many of the batch's
    events concern it (a burst of one lead's page views, a re-import's touches), since each write
    costs the embedded store far more than its fields. A batch holds one kind of event (one handler
    per kind), so a lead's different events still arrive in different batches.

    Idempotent by construction, so it needs no processed-event marker nor transaction (a quarter of
    the writes): the same event always sets the same fields to the same values, and a moment only
    moves forward ($max), so redelivery and any arrival order give one result (the latest touch or
    activity wins, whichever arrives last). Folding a lead's events into one write gives what writing
    them in turn gives: each moment the latest of them, each label the last event's (moments and
    labels are different fields).
    Projections that accumulate (sums, counters) must go through ``Store.run_once`` instead."""
    by_lead = {}
    for event, moments in events:
        update = by_lead.setdefault(event["lead_id"], {"$max": {}, "$set": {}})
        for name, key in moments.items():
            moment = parse_iso(event[key])
            update["$max"][name] = max(update["$max"].get(name, moment), moment)
        update["$set"].update(labels_of(event))
    return [pymongo.UpdateOne({"_id": lead_id}, {operator: fields for operator, fields in update.items() if fields},
                              upsert=True) for lead_id, update in by_lead.items()]


ATTRIBUTION = ("source", "medium", "campaign")
# Events carrying what a lead's opportunities copy from it (its attribution, its win probability).
COPIED_FROM_LEAD = ("lead_captured", "lead_scored")


def lead_attribution(lead: dict) -> dict:
    """What a lead's opportunities copy from it (its progress, or its folded labels): its attribution,
    once it has a source."""
    return {name: lead.get(name) or "" for name in ATTRIBUTION} if lead.get("source") else {}


def stored_fact(fact: dict, attribution: dict) -> dict:
    """An opportunity's snapshot as write_facts stores it: with its lead's attribution, the amount exact."""
    fact = {**fact, **attribution}
    if fact["amount"] is not None:
        fact["amount"] = Decimal128(fact["amount"])
    return fact


class ReportingRepository:
    def __init__(self, store: Store):
        self.store = store
        self.rollups = RollupStore(store)
        self.stream = EventStreamStore(store)
        self.webhooks = WebhookStore(self.stream)

    # ---- events in ---------------------------------------------------------------------------------

    def record(self, events_: list[dict], source_service: str) -> None:
        """Keep a batch of events in the log and on the event stream (once each, by id; one transaction),
        then project each. Projecting is idempotent and order-proof, so a redelivery — or a crash
        between the two steps — projects it again safely."""
        self.stream.keep(events_, [{
            "_id": event["event_id"], "event_type": event["event_type"], "source_service": source_service,
            "occurred_at": parse_iso(event["occurred_at"]), "lead_id": event.get("lead_id", ""),
            "opportunity_id": event.get("opportunity_id", ""), "account_id": event.get("account_id", ""),
            "payload": event} for event in events_], source_service)
        changed = self.project_all([(source_service, event) for event in events_], mark=False)
        for event in events_:
            if event["event_type"] == "lead_contacted":
                self.observe_speed_to_lead(event["lead_id"])
        self.rollups.mark(changed)

    def observe_speed_to_lead(self, lead_id: str) -> None:
        """Live events only (a rebuild's replay observes nothing twice)."""
        progress = LeadProgressDocument._get_collection().find_one({"_id": lead_id},
                                                                   {"captured_at": 1, "contacted_at": 1})
        if progress and progress.get("captured_at") and progress.get("contacted_at"):
            metrics.SPEED_TO_LEAD.observe(max(0.0, (progress["contacted_at"] - progress["captured_at"])
                                              .total_seconds()))

    def refresh_business_gauges(self) -> None:
        """Open pipeline by stage and won value so far, for the dashboards (bounded labels)."""
        metrics.OPEN_PIPELINE_VALUE.clear()
        metrics.OPEN_PIPELINE_OPPORTUNITIES.clear()
        counts, values, won = Counter(), defaultdict(Decimal), defaultdict(Decimal)
        for raw in OpportunityFactDocument._get_collection().find(
                {"status": {"$in": ["open", "won"]}}, {"status": 1, "pipeline_id": 1, "stage_id": 1, "amount": 1,
                                                      "currency": 1}):
            amount = raw["amount"].to_decimal() if raw.get("amount") is not None else Decimal(0)
            if raw["status"] == "won":
                won[raw.get("currency") or ""] += amount
                continue
            counts[(raw.get("pipeline_id", ""), raw.get("stage_id", ""))] += 1
            values[(raw.get("pipeline_id", ""), raw.get("stage_id", ""), raw.get("currency") or "")] += amount
        for labels, n in counts.items():
            metrics.OPEN_PIPELINE_OPPORTUNITIES.labels(*labels).set(n)
        for labels, amount in values.items():
            metrics.OPEN_PIPELINE_VALUE.labels(*labels).set(float(amount))
        for currency, amount in won.items():
            metrics.WON_VALUE.labels(currency).set(float(amount))

    def project_all(self, events: list[tuple[str, dict]], mark: bool = True) -> set:
        """Every projection a batch of (source service, event) feeds; the same function for live events
        and a rebuild's replay. Returns the records whose roll-up contribution the batch may have
        changed, marked for the roll-ups unless ``mark`` is False (the caller marks them with more).

        Each projection is written for the whole batch at once (one bulk write each, not a round trip
        per event), in an order that leaves what projecting the events one by one leaves: the leads'
        progress first (in event order, so the last label wins as it would), then the win
        probabilities (which need the progress there), then the attribution of the leads' existing
        opportunities, and last the opportunities' snapshots, which copy the attribution from the
        progress as it stands after the whole batch."""
        progressed, attributed, snapshots = [], [], []
        for source_service, event in events:
            event_type = event["event_type"]
            if event_type == "config_changed":
                self.record_config_change(event, source_service)
                continue
            moments = PROJECTED_MOMENTS.get((source_service, event_type))
            if moments and event.get("lead_id"):
                progressed.append((event, moments))
            if event_type == "lead_captured" and source_of(event):
                attributed.append(event)
            if event_type in OPPORTUNITY_SNAPSHOT_EVENTS:
                snapshots.append(event)
        if progressed:
            LeadProgressDocument._get_collection().bulk_write(progress_writes(progressed), ordered=True)
        for _, event in events:
            if event["event_type"] == "lead_scored" and event.get("win_probability") is not None:
                self.record_win_probability(event)
        # The leads' opportunities known before this batch's snapshots, read once: they learn a captured
        # lead's attribution whichever event came first (a lead captured before any opportunity of it,
        # nearly every one, has none to write), and the roll-ups hear of them (changed_records).
        deals = self.opportunities_of({event["lead_id"] for _, event in events
                                       if event["event_type"] in COPIED_FROM_LEAD and event.get("lead_id")})
        attributions = [pymongo.UpdateMany({"lead_id": event["lead_id"]}, {"$set": attribution_of(event)})
                        for event in attributed if deals.get(event["lead_id"])]
        if attributions:
            OpportunityFactDocument._get_collection().bulk_write(attributions, ordered=True)
        writes = self.snapshot_writes(snapshots)
        self.write_facts(writes)
        self.attribute_late(writes)
        changed = self.changed_records([event for _, event in events], deals)
        if mark:
            self.rollups.mark(changed)
        return changed

    @staticmethod
    def opportunities_of(lead_ids: set) -> dict:
        """{lead id: ids of its opportunities reporting knows}, one indexed query per chunk of leads."""
        found, facts = defaultdict(set), OpportunityFactDocument._get_collection()
        for chunk in id_chunks(sorted(lead_ids)):
            for raw in facts.find({"lead_id": {"$in": chunk}}, {"lead_id": 1}):
                found[raw["lead_id"]].add(raw["_id"])
        return found

    def changed_records(self, events: list[dict], deals: dict) -> set:
        """The records whose contribution to the roll-ups some events may have changed: their leads and
        opportunities, a lead's opportunities when the event carries what they copy from the lead
        (its attribution, its win probability; ``deals`` from opportunities_of), and the activities
        they log. One query per kind of lookup for the whole batch."""
        keys, without_lead = set(), set()
        for event in events:
            lead_id, opportunity_id = event.get("lead_id"), event.get("opportunity_id")
            if lead_id:
                keys.add(f"L:{lead_id}")
                if event["event_type"] in COPIED_FROM_LEAD:
                    keys.update(f"O:{identifier}" for identifier in deals.get(lead_id, ()))
            if opportunity_id:
                keys.add(f"O:{opportunity_id}")
                if not lead_id:  # an event without its lead: the deal's stored lead, if it has one
                    without_lead.add(opportunity_id)
            if event["event_type"] == "activity_logged":
                keys.add(f"A:{event['event_id']}")
        facts = OpportunityFactDocument._get_collection()
        for chunk in id_chunks(sorted(without_lead)):
            keys.update(f"L:{raw['lead_id']}" for raw in facts.find({"_id": {"$in": chunk}}, {"lead_id": 1})
                        if raw.get("lead_id"))
        return keys

    def record_win_probability(self, event: dict) -> None:
        """The newest probability the win model gave the lead (a late older score never replaces it).
        Compare-and-set on the stored moment, by id: the embedded store scans the whole collection for
        an id query that also has an $or, so "missing or older" is read first, then written only if
        nobody wrote in between."""
        at = parse_iso(event["occurred_at"])
        collection = LeadProgressDocument._get_collection()
        for _ in range(5):
            stored = collection.find_one({"_id": event["lead_id"]}, {"win_scored_at": 1})
            if stored is None:
                return  # the progress record comes with the score's own moments, applied first
            previous = stored.get("win_scored_at")
            if previous is not None and previous.replace(tzinfo=at.tzinfo) >= at:
                return
            if collection.update_one({"_id": event["lead_id"], "win_scored_at": previous},
                                     {"$set": {"win_probability": float(event["win_probability"]),
                                               "win_scored_at": at}}).matched_count:
                return

    def snapshot_writes(self, events: list[dict]) -> list:
        """(opportunity id, snapshot, moves) of opportunity events, as write_facts takes them: the deal
        of a lead carries the lead's attribution, read from its progress (one query for the batch)."""
        facts = [opportunity_fact(event) for event in events]
        attribution = {}
        for chunk in id_chunks(sorted({fact["lead_id"] for fact in facts if fact["lead_id"]})):
            for raw in LeadProgressDocument._get_collection().find({"_id": {"$in": chunk}},
                                                                   {name: 1 for name in ATTRIBUTION}):
                attribution[raw["_id"]] = lead_attribution(raw)
        return [(event["opportunity_id"], stored_fact(fact, attribution.get(fact["lead_id"], {})), stage_moves(event))
                for event, fact in zip(events, facts, strict=True)]

    @staticmethod
    def attribute_late(writes: list) -> None:
        """Deals written without their lead's attribution read it again, now that they are stored: a lead's
        capture, projected concurrently, writes its progress and then looks for its deals, and a deal
        is written and then looks at the progress, so one of the two always sees the other."""
        waiting = sorted({fact["lead_id"] for _, fact, _ in writes if fact.get("lead_id") and not fact.get("source")})
        updates = []
        for chunk in id_chunks(waiting):
            for raw in LeadProgressDocument._get_collection().find({"_id": {"$in": chunk}},
                                                                   {name: 1 for name in ATTRIBUTION}):
                if lead_attribution(raw):
                    updates.append(pymongo.UpdateMany({"lead_id": raw["_id"]}, {"$set": lead_attribution(raw)}))
        if updates:
            OpportunityFactDocument._get_collection().bulk_write(updates, ordered=True)

    def record_config_change(self, event: dict, source_service: str) -> None:
        """Keyed by event id, so a redelivered change is one record."""
        ConfigChangeDocument._get_collection().update_one({"_id": event["event_id"]}, {"$setOnInsert": {
            "kind": event["kind"], "version": event["version"], "changed_by": event.get("changed_by", ""),
            "occurred_at": parse_iso(event["occurred_at"]), "source_service": source_service}}, upsert=True)

    # ---- reads -------------------------------------------------------------------------------------

    def stage_counts(self, report_filter) -> tuple[dict, list]:
        """Leads per funnel stage, and the ids of the converted ones."""
        base = report_filter.query(LEAD_FILTERS)
        if report_filter.window():
            base["captured_at"] = report_filter.window()
        # One pass over the selected leads reading only the stage moments: cheaper than a count per
        # stage, and it needs no index per stage (each would cost every projection write).
        fields = {stage: stage_field(stage) for stage in FUNNEL_ORDER}
        counts, converted = Counter(), []
        for raw in LeadProgressDocument._get_collection().find(base, {field: 1 for field in fields.values()}):
            counts.update(stage for stage, field in fields.items() if raw.get(field) is not None)
            if raw.get("converted_at") is not None:
                converted.append(raw["_id"])
        return {stage: counts[stage] for stage in FUNNEL_ORDER}, converted

    def lead_progress(self, lead_id: str) -> dict | None:
        return LeadProgressDocument._get_collection().find_one({"_id": lead_id})

    def timeline(self, lead_id: str, offset: int, limit: int) -> list[dict]:
        """The lead's events and those of its account(s), oldest first."""
        log = EventLogDocument._get_collection()
        accounts = [a for a in log.distinct("account_id", {"lead_id": lead_id}) if a]
        entries = {d["_id"]: d for d in log.find({"lead_id": lead_id})}
        for account_id in accounts:
            entries.update({d["_id"]: d for d in log.find({"account_id": account_id})})
        ordered = sorted(entries.values(), key=lambda d: (*timeline_order(d["payload"]), d["_id"]))
        return ordered[offset:offset + limit]

    def facts(self, report_filter, period_field: str, **match) -> list[Fact]:
        """The opportunities a filter selects; the period applies to ``period_field`` (closed_at,
        engaged_at, or "" for none); ``match`` adds conditions such as status."""
        query = {**report_filter.query(FACT_FILTERS), **match}
        if report_filter.currency:
            query["currency"] = {"$in": [report_filter.currency, ""]}
        if period_field and report_filter.window():
            query[period_field] = report_filter.window()
        cursor = OpportunityFactDocument._get_collection().find(query, {name: 1 for name in FACT_FIELDS})
        return [_fact(raw) for raw in cursor]

    def lead_rows(self, report_filter) -> list[LeadRow]:
        """Leads captured within the period that the filter's lead fields select."""
        query = report_filter.query(LEAD_FILTERS)
        if report_filter.window():
            query["captured_at"] = report_filter.window()
        cursor = LeadProgressDocument._get_collection().find(query, {name: 1 for name in LEAD_ROW_FIELDS})
        return [LeadRow(lead_id=raw["_id"], **{name: raw.get(name) or ("" if name in LEAD_LABELS else None)
                                               for name in LEAD_ROW_FIELDS}) for raw in cursor]

    def facts_of_leads(self, lead_ids: list) -> dict:
        """{lead id: its opportunities' facts}. A few leads are looked up one by one (indexed); many
        are matched in one pass over the facts, because the embedded store answers a large $in by
        reading the collection once per batch."""
        collection, fields = OpportunityFactDocument._get_collection(), {name: 1 for name in FACT_FIELDS}
        found = {}
        if len(lead_ids) <= ONE_BY_ONE:
            raws = (raw for lead_id in lead_ids for raw in collection.find({"lead_id": lead_id}, fields))
        else:
            wanted = set(lead_ids)
            raws = (raw for raw in collection.find({"lead_id": {"$ne": ""}}, fields) if raw["lead_id"] in wanted)
        for raw in raws:
            found.setdefault(raw["lead_id"], []).append(_fact(raw))
        return found

    def activities_by_rep(self, report_filter) -> dict:
        """Activities logged within the period, per person who logged them."""
        query = {"event_type": "activity_logged"}
        if report_filter.window():
            query["occurred_at"] = report_filter.window()
        counts = Counter(d["payload"].get("logged_by", "") for d in EventLogDocument._get_collection().find(
            query, {"payload.logged_by": 1}))
        counts.pop("", None)
        return dict(counts)

    def put_campaign_cost(self, source: str, campaign: str, amount, currency: str, by: str) -> None:
        CampaignCostDocument._get_collection().update_one({"_id": f"{source}|{campaign}"}, {"$set": {
            "source": source, "campaign": campaign, "amount": Decimal128(amount), "currency": currency,
            "updated_at": utcnow(), "updated_by": by}}, upsert=True)

    def put_quota(self, quota: QuotaInput, by: str) -> None:
        holder = quota.owner_id or f"team:{quota.team}"
        QuotaDocument._get_collection().update_one(
            {"_id": f"{holder}|{quota.period_start}|{quota.period_end}"}, {"$set": {
                "owner_id": quota.owner_id, "team": quota.team, "period_start": quota.period_start,
                "period_end": quota.period_end, "amount": Decimal128(quota.amount), "currency": quota.currency,
                "updated_at": utcnow(), "updated_by": by}}, upsert=True)

    def quotas(self, report_filter) -> list[QuotaInput]:
        """Quotas whose period lies within the filter's, of the team or owner it names (a manager's
        filter names their team: the team's quota and those of its reps)."""
        query = {}
        if report_filter.start:
            query["period_start"] = {"$gte": report_filter.start_day}
        if report_filter.end:
            query["period_end"] = {"$lte": report_filter.last_day}
        equal = dict(report_filter.equal)
        found = []
        for raw in QuotaDocument._get_collection().find(query).sort([("period_start", 1), ("team", 1),
                                                                       ("owner_id", 1)]):
            if equal.get("owner_id") and raw["owner_id"] != equal["owner_id"]:
                continue
            if equal.get("team") and raw["team"] != equal["team"]:
                continue
            found.append(QuotaInput(raw["owner_id"], raw["team"], raw["period_start"], raw["period_end"],
                                    raw["amount"].to_decimal(), raw["currency"]))
        return found

    def campaign_costs(self, currency: str) -> dict:
        """{(source, campaign): amount} in one currency (costs in others cannot be compared)."""
        query = {"currency": currency} if currency else {}
        costs = list(CampaignCostDocument._get_collection().find(query))
        if not currency and len({c["currency"] for c in costs}) > 1:
            raise FailedPrecondition("campaign costs are in several currencies; filter by one with filter.currency")
        return {(c["source"], c["campaign"]): c["amount"].to_decimal() for c in costs}

    def open_facts_closing_within(self, report_filter) -> list[Fact]:
        """Open opportunities whose expected close date falls in the period (YYYY-MM-DD text)."""
        match = {"status": "open"}
        window = {}
        if report_filter.start:
            window["$gte"] = report_filter.start_day
        if report_filter.end:
            window["$lte"] = report_filter.last_day
        if window:
            window.setdefault("$gt", "")  # a deal without a close date closes in no period
            match["close_date"] = window
        return self.facts(report_filter, "", **match)

    def win_probabilities(self, lead_ids: list) -> dict:
        if not lead_ids:
            return {}
        cursor = LeadProgressDocument._get_collection().find(
            {"_id": {"$in": lead_ids}, "win_probability": {"$ne": None}}, {"win_probability": 1})
        return {d["_id"]: d["win_probability"] for d in cursor}

    # ---- rebuild -----------------------------------------------------------------------------------

    def start_rebuild(self, requested_by: str) -> RebuildJobDocument:
        """Queue the replay of the whole log into cleared projections. Refused while a rebuild runs: a
        second would clear the projections again under the first one's replay."""
        now = utcnow()
        # Leased to this request until the projections are cleared: no replica replays into them before.
        job = jobs.start(RebuildJobDocument(
            id=str(uuid.uuid4()), requested_by=requested_by, created_at=now, lease_until=now + jobs.JOB_LEASE,
            total=EventLogDocument._get_collection().estimated_document_count()), "rebuild job")
        for projection in PROJECTIONS:
            projection._get_collection().delete_many({})
        self.rollups.clear()  # the replay marks every record it projects again
        jobs.release(RebuildJobDocument, job.id)
        return job

    def rebuild_rollups(self, requested_by: str) -> RebuildJobDocument:
        """Clear the roll-ups and mark every record, for the applier to add up again (no replay): the
        job is done once every record is marked; the applier's progress is the queue's length."""
        now = utcnow()
        # Leased to this request while it marks, and never replayed by a timer that claims it.
        job = jobs.start(RebuildJobDocument(
            id=str(uuid.uuid4()), requested_by=requested_by, created_at=now, lease_until=now + MARKING_LEASE,
            rollups_only=True), "rebuild job")
        marked = 0
        try:
            marked = self.rollups.rebuild()
        finally:
            RebuildJobDocument.objects(id=job.id).update_one(set__status="done", set__total=marked,
                                                             set__processed=marked, set__finished_at=utcnow())
        job.reload()
        return job

    def rebuild_job(self, job_id: str) -> RebuildJobDocument:
        return get_or_not_found(RebuildJobDocument, job_id, "rebuild job")

    def claim_rebuild(self) -> RebuildJobDocument | None:
        return jobs.claim(RebuildJobDocument)

    def release_rebuild(self, job: RebuildJobDocument) -> None:
        jobs.release(RebuildJobDocument, job.id)

    def replay_batch(self, job: RebuildJobDocument) -> int:
        """Project the next batch of logged events; 0 when the log is done (the job is then finished).

        First every lead's events, read lead after lead through the (lead_id, occurred_at) index in
        batches of whole leads, folded in memory (domain.project_lead) and written with one bulk
        operation per collection; the cursor is the last lead done. Then the events of no lead (rule
        changes, deals imported without one) through the live projection, one by one. Writes merge
        like the live projection's ($max, newer versions only), so live events projected meanwhile
        are neither lost nor counted twice, and a replica that takes over after a crash redoes at
        most one batch."""
        if job.rollups_only:
            # Its request died while marking (its lease ran out): finished as far as it got; the
            # roll-ups keep reading the records until an admin asks again.
            jobs.advance(RebuildJobDocument, job.id, [])
            return 0
        log = EventLogDocument._get_collection()
        phase, _, position = (job.cursor or "lead:").partition(":")
        if phase == "lead":
            batch = list(log.find({"lead_id": {"$gt": position}}, {"payload": 1, "source_service": 1, "lead_id": 1})
                         .sort([("lead_id", 1), ("occurred_at", 1)]).limit(REBUILD_BATCH))
            if batch:
                last = batch[-1]["lead_id"]
                if len(batch) == REBUILD_BATCH and batch[0]["lead_id"] != last:
                    batch = [logged for logged in batch if logged["lead_id"] != last]  # whole leads only
                elif len(batch) == REBUILD_BATCH:  # one lead with more events than a batch
                    batch = list(log.find({"lead_id": last}, {"payload": 1, "source_service": 1, "lead_id": 1}))
                self.project_leads(batch)
                job.cursor = f"lead:{batch[-1]['lead_id']}"
                jobs.advance(RebuildJobDocument, job.id, [logged["_id"] for logged in batch], cursor=job.cursor)
                return len(batch)
            phase, position = "other", "0"
        done = int(position or 0)
        batch = list(log.find({"lead_id": ""}).sort([("lead_id", 1), ("occurred_at", 1)]).skip(done)
                     .limit(ONE_BY_ONE_BATCH))
        self.project_all([(logged["source_service"], logged["payload"]) for logged in batch])
        job.cursor = f"other:{done + len(batch)}"
        jobs.advance(RebuildJobDocument, job.id, [logged["_id"] for logged in batch], cursor=job.cursor)
        return len(batch)

    def project_leads(self, logged: list) -> None:
        """Project whole leads' events at once: each lead folded in memory, then written in bulk."""
        by_lead = defaultdict(list)
        for entry in logged:
            by_lead[entry["lead_id"]].append((entry["source_service"], entry["payload"]))
        progress_writes, win_writes, fact_writes, marks = [], [], [], set()
        for lead_id, events in in_slices(list(by_lead.items())):
            folded = project_lead(events)
            marks.add(f"L:{lead_id}")
            marks.update(f"A:{event['event_id']}" for _, event in events if event["event_type"] == "activity_logged")
            update = {name: value for name, value in (("$max", folded["moments"]), ("$set", folded["labels"]))
                      if value}
            if update:
                progress_writes.append(pymongo.UpdateOne({"_id": lead_id}, update, upsert=True))
            if folded["win"] is not None and update:
                probability, at = folded["win"]
                newer = {"$set": {"win_probability": probability, "win_scored_at": at}}
                win_writes += [pymongo.UpdateOne({"_id": lead_id, "win_scored_at": None}, newer),
                               pymongo.UpdateOne({"_id": lead_id, "win_scored_at": {"$lt": at}}, newer)]
            attribution = lead_attribution(folded["labels"])
            for opportunity_id, deal in folded["deals"].items():
                marks.add(f"O:{opportunity_id}")
                fact_writes.append((opportunity_id, stored_fact(deal["fact"], attribution), deal["moves"]))
        if progress_writes:
            LeadProgressDocument._get_collection().bulk_write(progress_writes, ordered=False)
        if win_writes:
            LeadProgressDocument._get_collection().bulk_write(win_writes, ordered=True)
        self.write_facts(fact_writes)
        self.rollups.mark(marks)

    def write_facts(self, writes: list) -> None:
        """Keep the newest snapshot of each opportunity: (opportunity id, snapshot, moves) in one bulk write.

        Idempotent and order-proof without a transaction: a snapshot only lands over an older version,
        and when a newer one is stored its upsert's insert collides with it and only the moves are
        written. Every move is kept whatever the snapshot's version: a set, so redelivery adds nothing
        and arrival order does not matter (they are sorted by time when read); with a newer snapshot
        they land in the same write, so nobody reads the new stage without the move into it."""
        if not writes:
            return
        collection = OpportunityFactDocument._get_collection()
        operations = [pymongo.UpdateOne({"_id": opportunity_id, "version": {"$lt": fact["version"]}},
                                        {"$set": fact, **({"$addToSet": {"moves": {"$each": moves}}} if moves else {})},
                                        upsert=True) for opportunity_id, fact, moves in writes]
        try:
            collection.bulk_write(operations, ordered=False)
        except pymongo.errors.BulkWriteError as failed:
            newer = {error["index"] for error in failed.details["writeErrors"] if error.get("code") == 11000}
            if len(newer) != len(failed.details["writeErrors"]):
                raise
            moves_only = [pymongo.UpdateOne({"_id": writes[i][0]}, {"$addToSet": {"moves": {"$each": writes[i][2]}}})
                          for i in sorted(newer) if writes[i][2]]
            if moves_only:
                collection.bulk_write(moves_only, ordered=False)


def _fact(raw: dict) -> Fact:
    amount = raw.get("amount")
    return Fact(opportunity_id=raw["_id"], **{name: raw.get(name) or "" for name in FACT_FIELDS
                                              if name not in ("amount", "probability", "engaged_at", "closed_at",
                                                              "moves")},
                amount=amount.to_decimal() if amount is not None else None,
                probability=int(raw.get("probability") or 0), engaged_at=raw.get("engaged_at"),
                closed_at=raw.get("closed_at"),
                moves=tuple((m.get("from", ""), m.get("to", ""), m["at"]) for m in raw.get("moves") or ()))


class ReportingStore(Store):
    documents = (LeadProgressDocument, ConfigChangeDocument, OpportunityFactDocument, EventLogDocument,
                 RebuildJobDocument, CampaignCostDocument, QuotaDocument, RollupDocument, RollupAppliedDocument,
                 RollupQueueDocument, RollupStateDocument, StreamHeadDocument, StreamPageDocument,
                 WebhookSubscriptionDocument, WebhookDeadLetterDocument)
    retired_indexes = {LeadProgressDocument: LEAD_PROGRESS_RETIRED_INDEXES, EventLogDocument: EVENT_LOG_RETIRED_INDEXES}

    def setup(self):
        super().setup()
        RollupStore(self).ensure_current()
        EventStreamStore.ensure_head()

    def get_dependency(self, worker_ctx):
        return ReportingRepository(self)

