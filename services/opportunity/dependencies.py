"""Opportunity's repository."""
import hashlib
import uuid
from datetime import datetime, time, timezone

import gridfs
from bson import ObjectId
from mongoengine.queryset.visitor import Q

from services.common.errors import NotFound
from services.common.events import parse_iso, utcnow
from services.common.store import StaleWrite, Store, get_or_not_found, one_by_one
from services.opportunity import events
from services.opportunity.conversion import AccountInput, account_key
from services.opportunity.domain import is_contact
from services.opportunity.mappers import activity_from_document, activity_to_document, ownership_from_document
from services.opportunity.models import (AccountDocument, ActivityDocument, AttachmentDocument, ContactDocument,
                                         LeadOwnershipDocument, OpportunityDocument, PipelineVersionDocument)
from services.opportunity.lifecycle import place, qualification_from_verdict
from services.opportunity.pipeline import BUILTIN_NEW_BUSINESS, compile_pipeline


class ActivityRepository:
    def __init__(self, store: Store):
        self.store = store

    def record_assignment_once(self, events_: list[dict], handler: str) -> list:
        """Each event's owner, once per event; a batch of events in one transaction."""
        def work(uow, event):
            # Reassignment moves ownership (newest change wins); an earlier first contact stays recorded.
            moment = event.get("assigned_at") or event.get("reassigned_at")
            uow.apply_owner_change(LeadOwnershipDocument, event["lead_id"], {
                "rep_id": event["rep_id"], "team": event.get("team", ""), "assigned_at": parse_iso(moment)},
                int(event.get("owner_version") or 1), upsert=True)
        return self.store.run_once_each(events_, handler, one_by_one(work))

    def ownership(self, lead_id: str):
        document = get_or_not_found(LeadOwnershipDocument, lead_id, "lead (assigned to sales)")
        return ownership_from_document(document)

    def log(self, activity, ownership) -> bool:
        """Store the activity; a lead's first contact also stamps the lead and emits lead_contacted,
        in the same transaction. True when this was the first contact."""
        def work(uow):
            uow.insert(activity_to_document(activity))
            uow.publish(*events.activity_logged(activity, ownership))
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


    def qualify(self, ownership, recorded: dict, by: str, now) -> None:
        """Record sales' verdict on the lead and announce it, together."""
        def work(uow):
            uow.update_one(LeadOwnershipDocument, {"_id": ownership.lead_id},
                           {"$set": {"qualification": {**recorded, "at": now, "by": by}}})
            uow.publish(*events.verdict(ownership.lead_id, ownership, recorded, now, by))
        self.store.run_in_transaction(work)

    # ---- pipelines -------------------------------------------------------------------------------

    def put_pipeline(self, definition: dict, created_by: str) -> PipelineVersionDocument:
        """Store the next version of the pipeline the document names, and announce it."""
        pipeline_id = definition["id"]

        def work(uow):
            version = uow.next_number(PipelineVersionDocument, "version", {"pipeline_id": pipeline_id})
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


    # ---- conversion --------------------------------------------------------------------------------

    def convert(self, conversion, ownership, converted_by: str, now):
        """Account and contact matched or created, the opportunity created in the pipeline's first
        stage, the lead marked converted and ``lead_converted`` announced, in one transaction. A lead
        converted before gets its records back unchanged. Returns (opportunity, account, contact,
        account_created, contact_created, already_converted)."""
        stored = self.pipeline_version(conversion.opportunity.pipeline_id)
        pipeline = compile_pipeline(stored.definition)
        first = pipeline.stages[0]
        opportunity_id = stable_id("opp", ownership.lead_id)
        account_id = stable_id("acc", conversion.account_key)
        contact_id = stable_id("con", conversion.contact_key) if conversion.contact_key else \
            stable_id("con", f"{ownership.lead_id}:contact")

        def work(uow):
            existing = uow.find_one(OpportunityDocument, {"_id": opportunity_id})
            if existing is not None:
                return (existing, uow.find_one(AccountDocument, {"_id": existing.account_id}),
                        uow.find_one(ContactDocument, {"_id": existing.contact_id}), False, False, True)
            account = uow.find_one(AccountDocument, {"_id": account_id})
            account_created = account is None
            if account_created:
                given = conversion.account
                account = AccountDocument(id=account_id, name=given.name, domain=given.domain,
                                          industry=given.industry, country=given.country, created_at=now)
                uow.insert(account)
            contact = uow.find_one(ContactDocument, {"_id": contact_id})
            contact_created = contact is None
            if contact_created:
                given = conversion.contact
                contact = ContactDocument(id=contact_id, account_id=account_id, first_name=given.first_name,
                                          last_name=given.last_name, email=given.email, phone=given.phone,
                                          title=given.title, created_at=now)
                uow.insert(contact)
            draft = conversion.opportunity
            owner = draft.owner_id or ownership.rep_id
            # An SDR qualifies, an AE sells: naming another owner hands the deal over, on the record.
            handoff = [{"from": ownership.rep_id, "to": owner, "at": now, "by": converted_by, "reason": "handoff"}] \
                if owner != ownership.rep_id else []
            opportunity = OpportunityDocument(
                id=opportunity_id, name=draft.name, lead_id=ownership.lead_id, account_id=account_id,
                account_name=account.name, contact_id=contact_id, pipeline_id=stored.pipeline_id,
                pipeline_version=stored.version, stage_id=first.stage_id, owner_id=owner,
                team=draft.team or ownership.team,
                amount=draft.amount, currency=draft.currency,
                close_date=draft.close_date.isoformat() if draft.close_date else "", status="open",
                history=[{"from": "", "to": first.stage_id, "at": now, "by": converted_by}], owner_history=handoff,
                qualification=qualification_from_verdict(ownership.qualification),
                engaged_at=now, created_at=now, created_by=converted_by, version=1)
            place(opportunity, pipeline)
            uow.insert(opportunity)
            uow.update_one(LeadOwnershipDocument, {"_id": ownership.lead_id},
                           {"$set": {"converted_to": opportunity_id}})
            uow.publish(*events.lead_converted(opportunity, ownership.rep_id))
            return opportunity, account, contact, account_created, contact_created, False
        return self.store.run_in_transaction(work)

    def import_history(self, batch: list, pipeline, pipeline_version: int, currency: str, prefix: str,
                       imported_by: str, now) -> tuple[int, int, int]:
        """Store a batch of HistoricalOpportunity in one transaction: the accounts they name (created
        once, by name), the opportunities not imported before (by prefixed external id) and one
        ``opportunity_imported`` each. Returns (imported, unchanged, accounts_created)."""
        last_open = pipeline.stages[-1].stage_id

        def work(uow):
            ids = {stable_id("opp", f"import:{prefix}{row.external_id}"): row for row in batch}
            known = uow.existing_ids(OpportunityDocument, ids)
            fresh = {opportunity_id: row for opportunity_id, row in ids.items() if opportunity_id not in known}
            accounts = {}
            for row in fresh.values():
                if row.account is not None:
                    accounts.setdefault(stable_id("acc", account_key(AccountInput(row.account.name, "", "", ""))),
                                        row.account)
            stored_accounts = uow.existing_ids(AccountDocument, accounts)
            new_accounts = [AccountDocument(id=account_id, name=a.name, industry=a.industry, country=a.country,
                                            employees=a.employees, location=a.location, parent=a.parent,
                                            created_at=now)
                            for account_id, a in accounts.items() if account_id not in stored_accounts]
            uow.insert_many(new_accounts)
            documents = [self._historical(opportunity_id, row, pipeline, pipeline_version, last_open,
                                          currency, prefix, imported_by, now)
                         for opportunity_id, row in fresh.items()]
            uow.insert_many(documents)
            uow.publish_many([events.imported(document) for document in documents])
            return len(documents), len(known), len(new_accounts)
        return self.store.run_in_transaction(work)

    @staticmethod
    def _historical(opportunity_id, row, pipeline, pipeline_version, last_open, currency, prefix, by, now):
        engaged_at = _midnight(row.engaged_on)
        closed_at = _midnight(row.closed_on) if row.status != "open" else None
        history = [{"from": "", "to": row.stage_id if row.status == "open" else last_open,
                    "at": engaged_at or now, "by": row.owner_id, "reason": "imported"}]
        if closed_at:
            history.append({"from": last_open, "to": row.stage_id, "at": closed_at, "by": row.owner_id,
                            "reason": row.lost_reason})
        account_id = stable_id("acc", account_key(AccountInput(row.account.name, "", "", ""))) if row.account else ""
        document = OpportunityDocument(
            id=opportunity_id, name=row.name, account_id=account_id,
            account_name=row.account.name if row.account else "", pipeline_id=pipeline.pipeline_id,
            pipeline_version=pipeline_version, stage_id=row.stage_id, owner_id=row.owner_id, team=row.team,
            manager_id=row.manager_id, office=row.office, product=row.product, amount=row.amount,
            currency=currency if row.amount else "",
            close_date=row.closed_on.isoformat() if row.closed_on else "", status=row.status,
            lost_reason=row.lost_reason, closed_at=closed_at, closed_from=last_open if closed_at else "",
            history=history, external_id=f"{prefix}{row.external_id}", engaged_at=engaged_at, created_at=now,
            created_by=by, version=1)
        place(document, pipeline)
        return document

    def opportunity(self, opportunity_id: str) -> OpportunityDocument:
        return get_or_not_found(OpportunityDocument, opportunity_id, "opportunity")

    def activity_kinds(self, lead_id: str) -> set:
        """Kinds of activity logged on the opportunity's lead (its one collaboration record)."""
        return set(ActivityDocument.objects(lead_id=lead_id).distinct("type"))

    def change(self, opportunity_id: str, apply, pipeline_of):
        """Read, ``apply(document)`` (which changes it and returns the events to announce, or raises),
        and write back only if nobody wrote in between (its version); otherwise read and apply again.
        So concurrent moves each see the other's result and history is never overwritten."""
        collection = OpportunityDocument._get_collection()

        def work(uow):
            document = uow.find_one(OpportunityDocument, {"_id": opportunity_id})
            if document is None:
                raise NotFound("opportunity", opportunity_id)
            read_version = document.version
            announced = apply(document)
            place(document, pipeline_of(document))
            document.version = read_version + 1
            document.validate()
            if collection.replace_one({"_id": opportunity_id, "version": read_version},
                                      document.to_mongo().to_dict(), session=uow.session).matched_count != 1:
                raise StaleWrite(opportunity_id)
            for event_type, subject_ids, snapshot in announced:
                # The events were made inside apply, before the write raised the version and placed
                # the probability they carry: their snapshot is taken again from what was written.
                uow.publish(event_type, subject_ids, {**snapshot, **events.current(document)})
            return document
        return self.store.run_in_transaction(work)

    # ---- attachments -----------------------------------------------------------------------------

    def _files(self):
        return gridfs.GridFS(self.store.db, collection="attachments")

    def store_attachment(self, opportunity_id: str, filename: str, content_type: str, spool, size: int,
                         uploaded_by: str, now) -> AttachmentDocument:
        """The bytes go to GridFS first, then the record; a crash in between leaves an unlisted file,
        never a record without its bytes."""
        digest = hashlib.sha256()
        for block in iter(lambda: spool.read(1 << 20), b""):
            digest.update(block)
        spool.seek(0)
        file_id = self._files().put(spool, filename=filename, content_type=content_type)
        document = AttachmentDocument(id=str(uuid.uuid4()), opportunity_id=opportunity_id, filename=filename,
                                      content_type=content_type, size=size, sha256=digest.hexdigest(),
                                      file_id=str(file_id), uploaded_by=uploaded_by, uploaded_at=now)
        document.save(force_insert=True)
        return document

    def attachment(self, attachment_id: str) -> AttachmentDocument:
        return get_or_not_found(AttachmentDocument, attachment_id, "attachment")

    def attachment_chunks(self, document: AttachmentDocument, chunk_bytes: int):
        stored = self._files().get(ObjectId(document.file_id))
        for block in iter(lambda: stored.read(chunk_bytes), b""):
            yield block

    def attachments(self, opportunity_id: str, offset: int, limit: int) -> list:
        return list(AttachmentDocument.objects(opportunity_id=opportunity_id).order_by("-uploaded_at")
                    .skip(offset).limit(limit))

    def attachment_count(self, opportunity_id: str) -> int:
        return AttachmentDocument.objects(opportunity_id=opportunity_id).count()

    def list_opportunities(self, filters: dict, offset: int, limit: int, works_on: str = "") -> list:
        """``works_on``: only those this person owns or collaborates on."""
        query = OpportunityDocument.objects(**filters)
        if works_on:
            query = query.filter(Q(owner_id=works_on) | Q(collaborator_ids=works_on))
        return list(query.order_by("-created_at", "id").skip(offset).limit(limit))


def _midnight(day):
    """A history's date as the start of that day, UTC (the files carry no time of day)."""
    return datetime.combine(day, time(0), tzinfo=timezone.utc) if day else None


def stable_id(prefix: str, key: str) -> str:
    """The same key always names the same record, so a conversion retried or raced creates one."""
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


class OpportunityStore(Store):
    documents = (LeadOwnershipDocument, ActivityDocument, PipelineVersionDocument, AccountDocument, ContactDocument,
                 OpportunityDocument, AttachmentDocument)

    def get_dependency(self, worker_ctx):
        return ActivityRepository(self)
