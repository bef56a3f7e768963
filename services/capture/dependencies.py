"""Capture's repository over its own database: every channel's leads go through ``submit`` (one) or
``import_batch`` (many), which recognise known leads, merge, and write the lead with its events in
one transaction."""
from collections import defaultdict
from dataclasses import dataclass, field, replace

import pymongo
from pymongo.errors import DuplicateKeyError

from services.capture import domain, events, matching
from services.capture.mappers import lead_from_document, lead_to_document
from services.capture.models import (LeadActivityDocument, ContactKey, FormDocument, IdempotencyKey, ImportMapping,
                                     LeadDocument, MatchCandidates, MergeRecord, VisitorLink)
from services.common.compute import in_slices
from services.common.errors import FailedPrecondition, NotFound
from services.common.events import utcnow
from services.common.store import Store, get_or_not_found, one_by_one


@dataclass(frozen=True)
class Submission:
    lead: object
    created: bool
    merged: bool
    unchanged: bool = False


@dataclass
class _Resolution:
    """How one capture relates to what is stored: a new lead, or a merge into ``target``."""
    lead: object
    target_id: str | None = None
    match: str = "exact"
    score: float = 100.0
    unclaimed: list = field(default_factory=list)
    possible_duplicates: list = field(default_factory=list)


_MATCH_FIELDS = ("first_name", "last_name", "company", "company_domain", "email")


def _touch_identity(touch: dict) -> tuple:
    """Touches recorded before they had ids are told apart by time, channel and source."""
    return (touch["touch_id"],) if touch.get("touch_id") else \
        (touch.get("captured_at"), touch.get("captured_by"), touch.get("source"))


def _append_candidates(collection, by_key: dict) -> None:
    """Append each key's new candidates, keeping the latest MAX_CANDIDATES. Keys nobody has used
    yet (most of an import of new leads) are inserted whole: on the embedded store an insert costs
    a quarter of an upserting $push. Keys that exist, or that a concurrent capture has just
    created, get the $push."""
    try:
        collection.insert_many([{"_id": key, "candidates": entries[-matching.MAX_CANDIDATES:]}
                                for key, entries in by_key.items()], ordered=False)
        return
    except pymongo.errors.BulkWriteError as failed:
        errors = failed.details.get("writeErrors", ())
        if any(error.get("code") != 11000 for error in errors):
            raise
        keys = list(by_key)
        existing = [keys[error["index"]] for error in errors]
    collection.bulk_write([pymongo.UpdateOne({"_id": key}, {"$push": {"candidates": {
        "$each": by_key[key], "$slice": -matching.MAX_CANDIDATES}}}, upsert=True) for key in existing], ordered=False)


class _Candidates:
    """Leads a capture might fuzzily match, indexed by match key so a batch looks each up once."""

    def __init__(self):
        self.by_key: dict[str, list] = {}

    def add(self, lead) -> None:
        for key in matching.match_keys(lead):
            self.by_key.setdefault(key, []).append(lead)

    def sharing_keys_with(self, lead) -> list:
        seen, found = set(), []
        for key in matching.match_keys(lead):
            for candidate in self.by_key.get(key, ()):
                if candidate.lead_id not in seen:
                    seen.add(candidate.lead_id)
                    found.append(candidate)
        return found


class LeadRepository:
    # A concurrent capture of the same person (or the same idempotency key) can make one transaction
    # fail on a unique key; trying again then finds the other's lead and merges into it.
    TRIES = 3

    def __init__(self, store: Store):
        self.store = store

    # ---- one capture -------------------------------------------------------------------------

    def submit(self, lead, idempotency_key: str, captured_by: str, trusted: bool = True) -> Submission:
        """Store a capture atomically with its event: a new lead (lead_captured), or, when its email,
        phone or external id is known — or its name and company match a lead closely enough — a merge
        into that lead (lead_merged) that keeps every touch. A lead that only resembles others is
        created with ``possible_duplicate_of`` set.

        With an idempotency key, a repeated submission returns the first one's lead and changes nothing.
        A visitor id links the visitor to the lead — from an untrusted (public) channel only when the
        capture created the lead: anyone can type a known person's email into a form, and must not
        thereby get to record behaviour on that person's lead.
        """
        scoped_key = f"{captured_by}:{idempotency_key}" if idempotency_key else ""
        lead = self._stamped(lead, captured_by)

        def work(uow) -> Submission:
            if scoped_key:
                earlier = uow.find_one(IdempotencyKey, {"_id": scoped_key})
                if earlier:
                    return Submission(self._lead(uow, earlier.lead_id), created=False, merged=False)
            claims = {key: uow.find_one(ContactKey, {"_id": key}) for key in domain.contact_keys(lead)}
            known = any(claims.values())
            candidates = _Candidates() if known else self._fuzzy_candidates(uow, [lead])
            resolution = self._resolve(lead, claims, candidates)
            result = self._apply(uow, resolution, captured_by, keep_touch=True)
            if scoped_key:
                uow.insert(IdempotencyKey(id=scoped_key, lead_id=result.lead.lead_id, created_at=utcnow()))
            if lead.visitor_id and (trusted or result.created):
                self._link_visitor(uow, lead.visitor_id, result.lead.lead_id)
            return result

        return self._with_retries(work)

    # ---- many captures (file import) ---------------------------------------------------------

    def import_batch(self, leads: list, captured_by: str) -> list[Submission]:
        """Store a batch of captures in one transaction with few round trips: the lookups, inserts and
        outbox entries of the whole batch are each one bulk call. Rows of the batch that are the same
        person merge into each other; a row that adds nothing to a known lead (a re-import) writes
        nothing and is reported unchanged."""
        leads = [self._stamped(lead, captured_by) for lead in leads]

        def work(uow) -> list[Submission]:
            keys = sorted({key for lead in leads for key in domain.contact_keys(lead)})
            claims = uow.find_by_ids(ContactKey, keys)
            # A row recognised by email, phone or external id needs no fuzzy candidates (a re-import: none).
            unknown = [lead for lead in leads if not any(key in claims for key in domain.contact_keys(lead))]
            candidates = self._fuzzy_candidates(uow, unknown)
            known_ids = {claim.lead_id for claim in claims.values()}
            stored = uow.find_by_ids(LeadDocument, sorted(known_ids))
            batch_leads: dict[str, object] = {}  # lead id -> lead as it will be written
            new_ids, changed_ids, outcomes, pending_events, new_claims = [], set(), [], [], []
            for lead in in_slices(leads):  # fuzzy matching a batch takes a while: the hub is let go between slices
                lead_claims = {key: claims.get(key) for key in domain.contact_keys(lead)}
                resolution = self._resolve(lead, lead_claims, candidates)
                if resolution.target_id is None:
                    lead = replace(lead, possible_duplicate_of=resolution.possible_duplicates)
                    batch_leads[lead.lead_id] = lead
                    new_ids.append(lead.lead_id)
                    for key in resolution.unclaimed:
                        claims[key] = ContactKey(id=key, lead_id=lead.lead_id)
                        new_claims.append(claims[key])
                    candidates.add(lead)
                    outcomes.append(Submission(lead, created=True, merged=False))
                    continue
                target = batch_leads.get(resolution.target_id)
                if target is None:
                    target = lead_from_document(stored[resolution.target_id]) \
                        if resolution.target_id in stored else self._lead(uow, resolution.target_id)
                merged = self._merged(target, lead, captured_by, keep_touch=not self._has_touch(target, lead))
                if merged == target:
                    outcomes.append(Submission(target, created=False, merged=True, unchanged=True))
                    continue
                batch_leads[merged.lead_id] = merged
                if merged.lead_id not in new_ids:
                    changed_ids.add(merged.lead_id)
                for key in resolution.unclaimed:
                    claims[key] = ContactKey(id=key, lead_id=merged.lead_id)
                    new_claims.append(claims[key])
                pending_events.append((merged.lead_id, lead))
                outcomes.append(Submission(merged, created=False, merged=True))
            uow.insert_many([lead_to_document(batch_leads[lead_id]) for lead_id in new_ids])
            uow.replace_many([lead_to_document(batch_leads[lead_id]) for lead_id in sorted(changed_ids)])
            uow.insert_many(new_claims)
            self._index_for_matching(uow, [batch_leads[lead_id] for lead_id in [*new_ids, *sorted(changed_ids)]])
            # A lead created and merged within the batch is announced once, as captured, in its final form.
            announced = [events.lead_captured(batch_leads[lead_id]) for lead_id in new_ids]
            announced += [events.lead_merged(batch_leads[lead_id], domain.touch_of(capture, captured_by))
                          for lead_id, capture in pending_events if lead_id in changed_ids]
            uow.publish_many(announced)
            return [replace(outcome, lead=batch_leads.get(outcome.lead.lead_id, outcome.lead)) for outcome in outcomes]

        return self._with_retries(work)

    # ---- shared steps ------------------------------------------------------------------------

    def _with_retries(self, work):
        for attempt in range(self.TRIES):
            try:
                return self.store.run_in_transaction(work)
            except DuplicateKeyError:
                if attempt == self.TRIES - 1:
                    raise

    @staticmethod
    def _stamped(lead, captured_by: str):
        touch = domain.touch_of(lead, captured_by)
        return replace(lead, captured_by=captured_by, touches=[touch],
                       consent_recorded_by=captured_by if lead.marketing_consent else "")

    @staticmethod
    def _has_touch(target, lead) -> bool:
        """A capture from the same channel, source and campaign is already on the lead (a re-import)."""
        wanted = (lead.source, lead.medium, lead.campaign, lead.captured_by)
        return any((t.get("source"), t.get("medium"), t.get("campaign"), t.get("captured_by")) == wanted
                   for t in target.touches)

    @staticmethod
    def _fuzzy_candidates(uow, leads) -> "_Candidates":
        """Recent leads sharing a company (domain or name) and a name initial with any of ``leads``."""
        candidates = _Candidates()
        keys = sorted({key for lead in leads for key in matching.match_keys(lead)})
        if keys:
            # Each document holds up to MAX_CANDIDATES leads to rebuild: the hub is let go every few.
            for document in in_slices(list(uow.find_by_ids(MatchCandidates, keys).values()), size=10):
                latest = {entry["lead_id"]: entry for entry in document.candidates}  # a re-indexed lead: last wins
                for entry in latest.values():
                    candidates.add(domain.Lead(captured_at=None, **entry))
        return candidates

    # Every capture from one company shares a match key, so the candidate lists are written after the
    # capture commits: inside its transaction, concurrent captures from a big company would all conflict
    # on one document and retry each other for seconds. A crash in between only leaves a lead out of
    # later fuzzy matching (exact email/phone matching is transactional).

    @staticmethod
    def _index_for_matching(uow, leads) -> None:
        """Make ``leads`` candidates of later captures: appended under each of their match keys,
        keeping the latest MAX_CANDIDATES per key."""
        by_key = defaultdict(list)
        for lead in leads:
            for key in matching.match_keys(lead):
                by_key[key].append({"lead_id": lead.lead_id, **{name: getattr(lead, name) for name in _MATCH_FIELDS}})
        if by_key:
            collection = uow.db[MatchCandidates._get_collection_name()]
            uow.after_commit(lambda: _append_candidates(collection, by_key))

    @staticmethod
    def _forget_for_matching(uow, lead) -> None:
        keys = matching.match_keys(lead)
        if keys:
            collection = uow.db[MatchCandidates._get_collection_name()]
            uow.after_commit(lambda: collection.update_many(
                {"_id": {"$in": keys}}, {"$pull": {"candidates": {"lead_id": lead.lead_id}}}))

    @staticmethod
    def _resolve(lead, claims: dict, candidates: list) -> _Resolution:
        """Email first: it identifies a person more surely than a shared phone line."""
        unclaimed = [key for key, claim in claims.items() if claim is None]
        existing_id = next((claim.lead_id for claim in claims.values() if claim), None)
        if existing_id is not None:
            return _Resolution(lead, existing_id, unclaimed=unclaimed)
        matches = matching.best_matches(lead, candidates.sharing_keys_with(lead))
        if matches and matches[0].score >= matching.MERGE_THRESHOLD:
            return _Resolution(lead, matches[0].lead_id, match="fuzzy", score=matches[0].score, unclaimed=unclaimed)
        return _Resolution(lead, None, unclaimed=unclaimed,
                           possible_duplicates=[match.lead_id for match in matches][:10])

    @staticmethod
    def _merged(target, lead, captured_by: str, keep_touch: bool):
        merged = domain.merge_into(target, lead)
        if keep_touch:
            merged.touches = [*target.touches, domain.touch_of(lead, captured_by)]
        return merged

    def _apply(self, uow, resolution: _Resolution, captured_by: str, keep_touch: bool) -> Submission:
        lead = resolution.lead
        if resolution.target_id is None:
            lead = replace(lead, possible_duplicate_of=resolution.possible_duplicates)
            uow.insert(lead_to_document(lead))
            self._claim(uow, resolution.unclaimed, lead.lead_id)
            self._index_for_matching(uow, [lead])
            uow.publish(*events.lead_captured(lead))
            return Submission(lead, created=True, merged=False)
        target = self._lead(uow, resolution.target_id)
        merged = self._merged(target, lead, captured_by, keep_touch)
        uow.replace(lead_to_document(merged))
        # A newly learnt phone becomes the lead's; one another lead already has stays with it.
        self._claim(uow, resolution.unclaimed, merged.lead_id)
        if matching.match_keys(merged) != matching.match_keys(target):
            self._index_for_matching(uow, [merged])
        uow.publish(*events.lead_merged(merged, domain.touch_of(lead, captured_by), match=resolution.match,
                                        score=resolution.score))
        return Submission(merged, created=False, merged=True)

    @staticmethod
    def _claim(uow, keys: list[str], lead_id: str) -> None:
        for key in keys:
            uow.insert(ContactKey(id=key, lead_id=lead_id))

    @staticmethod
    def _lead(uow, lead_id: str):
        document = uow.find_one(LeadDocument, {"_id": lead_id})
        if document is None:
            raise NotFound("lead", lead_id)
        return lead_from_document(document)

    # ---- reading -----------------------------------------------------------------------------

    def get(self, lead_id: str):
        return lead_from_document(get_or_not_found(LeadDocument, lead_id, "lead"))

    def search(self, *, text_words=(), source="", tag="", captured_from=None, captured_to=None, owner_id=None,
               possible_duplicates_only=False, needs_review_only=False, team=None, offset=0, limit=50) -> list:
        """Newest first. Every filter is an exact lookup on an indexed field; the text words are
        prefixes stored on the lead (see matching.search_terms)."""
        query: dict = {"merged_into": ""}
        if text_words:
            query["$and"] = [{"search_terms": word} for word in text_words]
        if source:
            query["source"] = domain.canonical_label(source)
        if tag:
            query["tags"] = domain.canonical_label(tag)
        if captured_from or captured_to:
            query["captured_at"] = {**({"$gte": captured_from} if captured_from else {}),
                                    **({"$lt": captured_to} if captured_to else {})}
        if owner_id is not None:
            query["owner_id"] = owner_id
        if team is not None:
            # A manager's team's leads, and the leads not routed to any team yet.
            query["owner_team"] = {"$in": [team, ""]}
        if possible_duplicates_only:
            query["possible_duplicate_of.0"] = {"$exists": True}
        if needs_review_only:
            query["needs_review"] = True
        documents = LeadDocument.objects(__raw__=query).order_by("-captured_at", "-id").skip(offset).limit(limit)
        return [lead_from_document(document) for document in documents]

    # ---- people fixing the record ------------------------------------------------------------

    def merge(self, primary_id: str, duplicate_id: str, merged_by: str):
        """Fold the duplicate into the primary and remember exactly what changed, for UnmergeLeads."""
        if primary_id == duplicate_id:
            raise FailedPrecondition("a lead cannot be merged into itself")

        def work(uow):
            primary, duplicate = self._lead(uow, primary_id), self._lead(uow, duplicate_id)
            for lead in (primary, duplicate):
                if lead.merged_into:
                    raise FailedPrecondition(f"lead {lead.lead_id} was merged into {lead.merged_into} already")
            merged = domain.merge_into(primary, duplicate)
            merged.touches = [*primary.touches, *duplicate.touches]
            merged.possible_duplicate_of = [i for i in primary.possible_duplicate_of if i != duplicate_id]
            filled = {name: getattr(merged, name) for name in domain.FILLABLE
                      if getattr(merged, name) != getattr(primary, name)}
            moved_keys = [claim.id for claim in uow.find(ContactKey, {"lead_id": duplicate_id})]
            uow.db[ContactKey._get_collection_name()].update_many(
                {"lead_id": duplicate_id}, {"$set": {"lead_id": primary_id}}, session=uow.session)
            # The duplicate's web visitor is the primary's from now on (and its again after an unmerge).
            moved_visitors = [link.id for link in uow.find(VisitorLink, {"lead_id": duplicate_id})]
            uow.db[VisitorLink._get_collection_name()].update_many(
                {"lead_id": duplicate_id}, {"$set": {"lead_id": primary_id}}, session=uow.session)
            consent_given = merged.marketing_consent and not primary.marketing_consent
            record = MergeRecord(
                id=duplicate_id, primary_id=primary_id, duplicate=lead_to_document(duplicate).to_mongo().to_dict(),
                filled_fields=filled, added_tags=sorted(set(merged.tags) - set(primary.tags)),
                added_contacts=[c for c in merged.other_contacts if c not in primary.other_contacts],
                added_custom_fields=sorted(set(merged.custom_fields) - set(primary.custom_fields)),
                moved_keys=moved_keys, moved_touches=len(duplicate.touches), moved_visitors=moved_visitors,
                primary_consent={name: getattr(primary, name) for name in domain.CONSENT_FIELDS}
                if consent_given else {},
                merged_at=utcnow(), merged_by=merged_by)
            uow.replace(record)
            uow.replace(lead_to_document(merged))
            uow.replace(lead_to_document(replace(duplicate, merged_into=primary_id)))
            self._forget_for_matching(uow, duplicate)
            self._index_for_matching(uow, [merged])
            uow.publish(*events.lead_merged(merged, None, merged_lead_id=duplicate_id, match="manual"))
            return merged

        return self.store.run_in_transaction(work)

    def unmerge(self, duplicate_id: str, unmerged_by: str):
        """Bring the duplicate back as it was, and take from the primary what the merge gave it —
        but not what it learnt since (a value changed after the merge stays)."""

        def work(uow):
            record = uow.find_one(MergeRecord, {"_id": duplicate_id})
            if record is None:
                self._lead(uow, duplicate_id)  # NOT_FOUND for an unknown lead
                raise FailedPrecondition(f"lead {duplicate_id} is not merged into another lead")
            primary = self._lead(uow, record.primary_id)
            if primary.merged_into:
                # Its keys and touches now live on that lead; unmerge that one first.
                raise FailedPrecondition(f"lead {primary.lead_id} was merged into {primary.merged_into} since; "
                                         f"unmerge {primary.lead_id} first")
            restored = lead_from_document(LeadDocument._from_son(record.duplicate))
            for name, value in record.filled_fields.items():
                if getattr(primary, name) == value:
                    setattr(primary, name, type(value)() if not isinstance(value, bool) else False)
            primary.tags = [t for t in primary.tags if t not in record.added_tags]
            primary.other_contacts = [c for c in primary.other_contacts if c not in record.added_contacts]
            primary.custom_fields = {k: v for k, v in primary.custom_fields.items()
                                     if k not in record.added_custom_fields}
            if record.primary_consent and all(getattr(primary, name) == getattr(restored, name)
                                              for name in domain.CONSENT_FIELDS):
                # The consent was the duplicate's: the primary never gave it.
                for name, value in record.primary_consent.items():
                    setattr(primary, name, value)
            moved = {_touch_identity(t) for t in restored.touches}
            primary.touches = [t for t in primary.touches if _touch_identity(t) not in moved]
            # Only keys still on the primary go back: one moved on since stays where it is.
            uow.db[ContactKey._get_collection_name()].update_many(
                {"_id": {"$in": list(record.moved_keys)}, "lead_id": record.primary_id},
                {"$set": {"lead_id": duplicate_id}}, session=uow.session)
            uow.db[VisitorLink._get_collection_name()].update_many(
                {"_id": {"$in": list(record.moved_visitors)}, "lead_id": record.primary_id},
                {"$set": {"lead_id": duplicate_id}}, session=uow.session)
            uow.replace(lead_to_document(primary))
            uow.replace(lead_to_document(restored))
            self._forget_for_matching(uow, primary)
            self._index_for_matching(uow, [restored, primary])
            uow.db[MergeRecord._get_collection_name()].delete_one({"_id": duplicate_id}, session=uow.session)
            uow.publish(*events.lead_unmerged(restored, primary))
            return restored, primary

        return self.store.run_in_transaction(work)

    def set_owner(self, events_: list[dict], handler: str) -> list:
        """The owner routing chose (lead_assigned or lead_reassigned; "" while queued), newest first;
        a batch of events in one transaction."""
        def work(uow, event):
            return uow.apply_owner_change(LeadDocument, event["lead_id"], {"owner_id": event["rep_id"],
                                                                           "owner_team": event.get("team", "")},
                                          int(event.get("owner_version") or 1))

        return self.store.run_once_each(events_, handler, one_by_one(work))

    # ---- behaviour ---------------------------------------------------------------------------

    def record_activity(self, activity: LeadActivityDocument, email: str = ""):
        """Store one activity once (its id is the key). For a known lead it is announced at once; for an
        anonymous visitor it waits until the visitor identifies themselves (``_link_visitor``)."""

        def work(uow):
            existing = uow.find_one(LeadActivityDocument, {"_id": activity.id})
            if existing:
                return existing, False
            if not activity.lead_id and email:
                claim = uow.find_one(ContactKey, {"_id": f"email:{email}"})
                if claim is None:
                    raise NotFound("lead with email", email)
                activity.lead_id = claim.lead_id
            if activity.lead_id:
                self._lead(uow, activity.lead_id)
                if activity.visitor_id:
                    self._link_visitor(uow, activity.visitor_id, activity.lead_id)
            elif activity.visitor_id:
                link = uow.find_one(VisitorLink, {"_id": activity.visitor_id})
                activity.lead_id = link.lead_id if link else ""
            uow.insert(activity)
            if activity.lead_id:
                uow.publish(*events.lead_activity_recorded(activity))
            return activity, True

        return self.store.run_in_transaction(work)

    @staticmethod
    def _link_visitor(uow, visitor_id: str, lead_id: str) -> None:
        """The visitor is this lead from now on; what they did anonymously becomes the lead's."""
        if uow.find_one(VisitorLink, {"_id": visitor_id}):
            return
        uow.insert(VisitorLink(id=visitor_id, lead_id=lead_id, linked_at=utcnow()))
        anonymous = uow.find(LeadActivityDocument, {"visitor_id": visitor_id, "lead_id": ""})
        if not anonymous:
            return
        uow.db[LeadActivityDocument._get_collection_name()].update_many(
            {"visitor_id": visitor_id, "lead_id": ""}, {"$set": {"lead_id": lead_id}}, session=uow.session)
        for activity in anonymous:
            activity.lead_id = lead_id
            uow.publish(*events.lead_activity_recorded(activity, stitched=True))

    def activities(self, lead_id: str, limit: int = 100) -> list:
        return list(LeadActivityDocument.objects(lead_id=lead_id).order_by("-occurred_at").limit(limit))


class FormRepository:
    def __init__(self, store: Store):
        self.store = store

    def put(self, form_id: str, definition: dict, new_key: str, updated_by: str) -> FormDocument:
        """Create or replace; the public key and a growing version survive every replacement."""

        def work(uow):
            existing = uow.find_one(FormDocument, {"_id": form_id})
            document = FormDocument(
                id=form_id, public_key=existing.public_key if existing else new_key,
                version=(existing.version + 1) if existing else 1, definition=definition,
                updated_at=utcnow(), updated_by=updated_by)
            uow.replace(document)
            return document

        return self.store.run_in_transaction(work)

    def get(self, form_id: str) -> FormDocument:
        return get_or_not_found(FormDocument, form_id, "form")

    def by_public_key(self, public_key: str) -> FormDocument:
        document = FormDocument.objects(public_key=public_key).first()
        if document is None:
            raise NotFound("form", public_key)
        return document

    def list(self, offset: int, limit: int) -> list:
        return list(FormDocument.objects.order_by("id").skip(offset).limit(limit))

    def saved_mapping(self, source: str) -> dict | None:
        document = ImportMapping.objects(id=source).first()
        return dict(document.mapping) if document else None

    def save_mapping(self, source: str, mapping: dict) -> None:
        ImportMapping(id=source, mapping=mapping, updated_at=utcnow()).save()


@dataclass(frozen=True)
class CaptureRepositories:
    leads: LeadRepository
    forms: FormRepository


class CaptureStore(Store):
    documents = (LeadDocument, IdempotencyKey, ContactKey, MatchCandidates, MergeRecord, FormDocument,
                 ImportMapping, LeadActivityDocument, VisitorLink)

    def get_dependency(self, worker_ctx):
        return CaptureRepositories(LeadRepository(self), FormRepository(self))
