"""Scoring's repository: model versions, lead scores written with revision checks, rescore jobs and
win models (artefacts in GridFS)."""
import logging
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import timedelta

import gridfs
from bson import ObjectId
from nameko import config

from services.common.compute import off_the_hub
from services.common.errors import NotFound
from services.common.events import utcnow
from services.common import jobs
from services.common.store import DUPLICATE, Store, get_or_not_found, one_by_one
from services.scoring import domain, events, win_model
from services.scoring.mappers import apply_score, behaviour_of, score_from_document
from services.scoring.models import (BehaviourDocument, LeadScoreDocument, RescoreJobDocument, ScheduleDocument,
                                     ScoringModelDocument, WinModelDocument, WinModelPerformanceDocument)

log = logging.getLogger(__name__)
LIVE_CHECK_SECONDS = 1.0  # a changed model is live on every replica within this long, without a restart
RESCORE_BATCH = 200
TRAINING_LEASE = timedelta(minutes=30)  # a replica that dies while training frees the hold after this
MODEL_PREFIX = "scoring-model@"
WIN_MODEL_PREFIX = "win-model@"
# Scores stored before merges were tracked have no merged_into at all: they count as not merged.
NOT_MERGED = {"merged_into__in": ["", None]}


@dataclass
class Applied:
    """What one change to a lead's score did."""

    document: LeadScoreDocument
    changed: bool = False
    qualified: bool = False
    disqualified: bool = False
    realised: tuple | None = None  # (lineage, increments) when the lead's outcome was counted or moved


@dataclass
class LiveWinModel:
    version: str
    model: win_model.TrainedModel


@dataclass(frozen=True)
class PredictedWin:
    """A win probability computed ahead of the lead's transaction, and what it was computed from."""

    model_version: str
    revision: int | None
    probability: float


class _LiveCache:
    """The live scoring and win models of this process, re-read when a newer version appears."""

    def __init__(self, db):
        self.db = db
        self.checked_at = 0.0
        self.scoring_version = None
        self.scoring = None
        self.win_version = None
        self.win = None
        self.win_lines = {}  # win model version -> (its TrainingConfig, its lineage)

    def refresh(self, force: bool = False):
        if not force and time.monotonic() - self.checked_at < LIVE_CHECK_SECONDS:
            return
        latest = ScoringModelDocument.objects.order_by("-id").only("id").first()
        version = latest.id if latest else 0
        if version != self.scoring_version:
            if latest is None:
                self.scoring = domain.builtin_model(int(config.get("SCORING_MQL_THRESHOLD", 60)))
            else:
                document = ScoringModelDocument.objects.get(id=version)
                self.scoring = domain.compile_model(document.definition, f"{MODEL_PREFIX}{version}")
            self.scoring_version = version
        live = WinModelDocument.objects(status="live").only("id", "artefact_id").first()
        win_version = live.id if live else 0
        if win_version != self.win_version:
            self.win = None
            if live is not None:
                data = gridfs.GridFS(self.db, collection="win_model_artefacts").get(ObjectId(live.artefact_id)).read()
                self.win = LiveWinModel(f"{WIN_MODEL_PREFIX}{live.id}", win_model.from_bytes(data))
            self.win_version = win_version
        self.checked_at = time.monotonic()

    def win_line(self, version: str) -> tuple[win_model.TrainingConfig, int] | None:
        """A win model version's ("win-model@N") training configuration (how it reads a lead's outcome)
        and lineage, None if unknown. Both are fixed once stored, so they are cached."""
        if version not in self.win_lines:
            stored = WinModelDocument.objects(id=win_model_number(version)).only("config", "lineage").first()
            if stored is None:
                return None
            self.win_lines[version] = (win_model.TrainingConfig.from_dict(stored.config), stored.line)
        return self.win_lines[version]


def win_model_number(version: str) -> int:
    return int(version.removeprefix(WIN_MODEL_PREFIX))


class ScoreRepository:
    def __init__(self, store: "ScoringStore"):
        self.store = store
        self.live = store.live

    # ---- models ------------------------------------------------------------------------------------

    def model(self) -> domain.ScoringModel:
        self.live.refresh()
        return self.live.scoring

    def win(self) -> LiveWinModel | None:
        self.live.refresh()
        return self.live.win

    def put_model(self, definition: dict, created_by: str) -> ScoringModelDocument:
        """Store a new version (already compiled by the caller) and make it live."""
        def work(uow):
            document = ScoringModelDocument(id=uow.next_number(ScoringModelDocument), definition=definition,
                                            created_at=utcnow(), created_by=created_by)
            uow.insert(document)
            uow.publish(*events.config_changed("scoring_model", f"{MODEL_PREFIX}{document.id}", created_by))
            return document
        document = self.store.run_in_transaction(work)
        self.live.refresh(force=True)
        return document

    def model_document(self, version: int) -> ScoringModelDocument | None:
        """A stored version (0: the live one); None when nothing is stored (the built-in model is live)."""
        if version:
            return get_or_not_found(ScoringModelDocument, version, "scoring model version")
        return ScoringModelDocument.objects.order_by("-id").first()

    def model_versions(self, offset: int, limit: int) -> list:
        return list(ScoringModelDocument.objects.order_by("-id").skip(offset).limit(limit))

    # ---- scores --------------------------------------------------------------------------------------

    def apply(self, lead_id: str, change, event: dict | None = None, handler: str = "", now=None):
        """Change what a lead's score is computed from (``change(document, uow)`` mutates it and returns
        False when there is nothing to do), recompute the score and write both with a revision check, with
        the events the change causes, in one transaction; once per event when ``event`` is given. Returns
        Applied, None (nothing to do) or DUPLICATE."""
        model, win = self.model(), self.win()

        def work(uow):
            document = uow.find_one(LeadScoreDocument, {"_id": lead_id})
            read_revision = document.revision if document else None
            document = document or LeadScoreDocument(id=lead_id)
            previous = score_from_document(document) if document.scored_at else None
            if change(document, uow) is False:
                return None
            applied, caused = self._recomputed(document, previous, read_revision, model, win, now)
            uow.replace_at_revision(document, read_revision)
            uow.publish_many(caused)
            _count_realised(uow, [applied])
            return applied

        if event is not None:
            return self.store.run_once(event, handler, work)
        return self.store.run_in_transaction(work)

    def apply_each(self, changes: list[tuple[str, object, dict]], handler: str) -> list:
        """``apply`` for a batch of events, ``changes`` holding (lead_id, change, event) for each, in one
        transaction once per event (``Store.run_once_each``): the leads are read together, changed in
        the events' order, their win probabilities predicted in one model call off the hub, and written
        in one bulk write with their revision checks, with every event they cause in one outbox entry.
        A lead that several events of the batch change is scored once, after all of them. One outcome
        per event: Applied (on the lead's last event; None on its earlier ones), None or DUPLICATE.

        Only for changes that touch their own lead's document alone (a merge also writes the
        duplicate's: ``apply`` one event at a time)."""
        model, win = self.model(), self.win()
        change_of = {event["event_id"]: (lead_id, change) for lead_id, change, event in changes}

        def work_all(uow, fresh: list) -> list:
            found = uow.find_by_ids(LeadScoreDocument, [change_of[event["event_id"]][0] for event in fresh])
            touched, last_change, outcomes = {}, {}, [None] * len(fresh)
            for position, event in enumerate(fresh):
                lead_id, change = change_of[event["event_id"]]
                if lead_id not in touched:
                    document = found.get(lead_id)
                    read_revision = document.revision if document else None
                    document = document or LeadScoreDocument(id=lead_id)
                    touched[lead_id] = (document, read_revision,
                                        score_from_document(document) if document.scored_at else None)
                if change(touched[lead_id][0], uow) is not False:
                    last_change[lead_id] = position
            changed = [touched[lead_id] for lead_id in last_change]
            predicted = self._predict(win, [(document, read_revision) for document, read_revision, _ in changed])
            caused = []
            for (document, read_revision, previous), position in zip(changed, last_change.values(), strict=True):
                applied, events_of_lead = self._recomputed(document, previous, read_revision, model, win, None,
                                                           predicted.get(document.id))
                caused.extend(events_of_lead)
                outcomes[position] = applied
            uow.replace_many_at_revision([(document, read_revision) for document, read_revision, _ in changed])
            uow.publish_many(caused)
            _count_realised(uow, outcomes)
            return outcomes

        return self.store.run_once_each([event for _, _, event in changes], handler, work_all)

    @staticmethod
    def _predict(win: LiveWinModel | None, documents: list) -> dict:
        """Win probabilities of (document, revision it was read at) pairs in one model call, off the hub."""
        scorable = [(d, revision) for d, revision in documents if d.lead and not d.merged_into]
        if win is None or not scorable:
            return {}
        probabilities = off_the_hub(win_model.predict_many, win.model, [
            (d.lead, Counter(e.type for e in behaviour_of(d))) for d, _ in scorable])
        return {d.id: PredictedWin(win.version, revision, p)
                for (d, revision), p in zip(scorable, probabilities, strict=True)}

    def rescore(self, documents: list, predicted: dict, now=None) -> list[Applied]:
        """Recompute the scores of many leads as they stand, in one transaction: one commit and one outbox
        write for the lot, where one transaction per lead made a rescore of 10,000 leads take minutes.
        The documents were read before; each write checks its revision, and if any lead changed
        meanwhile the whole transaction runs again on fresh reads. ``predicted`` (``predict_wins``) gives
        a lead's win probability only while the lead is at the revision it was predicted from."""
        model, win = self.model(), self.win()
        as_read = [documents]  # the first attempt writes them; a retry reads them afresh (the first changed them)

        def work(uow):
            current = as_read.pop() if as_read else [
                d for d in (uow.find_one(LeadScoreDocument, {"_id": d.id}) for d in documents) if d is not None]
            outcomes, caused = [], []
            for document in current:
                if not document.lead:
                    continue  # only behaviour so far: nothing to score until the lead arrives
                previous = score_from_document(document) if document.scored_at else None
                read_revision = document.revision
                applied, events_of_lead = self._recomputed(document, previous, read_revision, model, win, now,
                                                           predicted.get(document.id))
                uow.replace_at_revision(document, read_revision)
                caused.extend(events_of_lead)
                outcomes.append(applied)
            uow.publish_many(caused)
            _count_realised(uow, outcomes)
            return outcomes

        return self.store.run_in_transaction(work)

    def _recomputed(self, document, previous, read_revision, model, win, now,
                    predicted: PredictedWin | None = None) -> tuple[Applied, list]:
        """Score ``document`` (changed or not) and say what changed and which events that causes."""
        applied, caused = Applied(document), []
        if document.lead and not document.merged_into:
            probability = None
            if (predicted is not None and win is not None and predicted.model_version == win.version
                    and predicted.revision == read_revision):
                probability = predicted.probability
            score = self._score(document, model, win, now or utcnow(), probability)
            applied.changed = previous is None or _visible(previous) != _visible(score)
            apply_score(document, score)
            if (not document.first_win_model_version and score.win_probability is not None
                    and win_model.label_of(document.lead, document.outcome, win.model.config) is None):
                document.first_win_probability = score.win_probability
                document.first_win_model_version = score.win_model_version
            applied.realised = self._realised_change(document)
            lead = {**document.lead, "tags": domain.effective_tags(document.lead, score)}
            if applied.changed:
                caused.append(events.lead_scored(score, lead))
            applied.qualified = domain.newly_qualified(previous, score)
            applied.disqualified = domain.newly_disqualified(previous, score, model)
            if applied.qualified:
                caused.append(events.lead_qualified(score, lead))
            if applied.disqualified:
                caused.append(events.lead_disqualified(score, lead))
        else:
            document.next_change_at = None  # nothing to rescore until the lead itself arrives (or returns)
        return applied, caused

    @staticmethod
    def _score(document, model, win: LiveWinModel | None, now, probability: float | None = None) -> domain.Score:
        behaviour = behaviour_of(document)
        score = domain.score_lead(document.lead, model, now, behaviour)
        if win is not None:
            if probability is None:
                probability = win_model.predict(win.model, document.lead, Counter(e.type for e in behaviour))
            score = domain.with_win_probability(score, probability, win.version)
        return score

    def predict_wins(self, documents: list) -> dict:
        """Win probabilities for many leads in one prediction, computed off the hub: {lead_id: PredictedWin}.
        A rescore of thousands of leads otherwise ran one model call per lead on the event loop."""
        return self._predict(self.win(), [(d, d.revision) for d in documents])

    def get(self, lead_id: str) -> LeadScoreDocument:
        document = LeadScoreDocument.objects(id=lead_id).first()
        if document is None or not document.scored_at:
            raise NotFound("lead score", lead_id)
        return document

    def explain_win(self, document: LeadScoreDocument) -> list:
        win = self.win()
        if win is None or not document.lead:
            return []
        counts = Counter(e.type for e in behaviour_of(document))
        return win_model.predict_with_factors(win.model, document.lead, counts)[1]

    def search(self, grade: str, qualified: bool | None, min_total: int | None, max_total: int | None,
               offset: int, limit: int) -> list:
        query = {"scored_at__ne": None, **NOT_MERGED}
        if grade:
            query["grade"] = grade
        if qualified is not None:
            query["qualified"] = qualified
        if min_total is not None:
            query["total__gte"] = min_total
        if max_total is not None:
            query["total__lte"] = max_total
        return list(LeadScoreDocument.objects(**query).order_by("-total", "id").skip(offset).limit(limit))

    def due_for_decay(self, now, limit: int = RESCORE_BATCH) -> list[LeadScoreDocument]:
        """The leads whose score changes with time by now, soonest first, whole (to predict together)."""
        return list(LeadScoreDocument.objects(next_change_at__lte=now).order_by("next_change_at").limit(limit))

    def _realised_change(self, document: LeadScoreDocument) -> tuple | None:
        """Count the lead's kept prediction once its outcome is known under the predicting model's own
        label, or move it when that outcome changed: (the model's lineage, increments), None when nothing
        moves.
        Sets document.realised_label to what is counted now."""
        version, probability = document.first_win_model_version, document.first_win_probability
        line = self.live.win_line(version) if version and probability is not None else None
        if line is None:
            return None
        config_, lineage = line
        label = win_model.label_of(document.lead or {}, document.outcome, config_)
        if label == document.realised_label:
            return None
        increments = Counter()
        if document.realised_label is not None:
            increments.update(win_model.realised_increments(probability, document.realised_label, -1))
        if label is not None:
            increments.update(win_model.realised_increments(probability, label))
        document.realised_label = label
        return lineage, dict(increments)

    def record_outcomes(self, events_: list[dict], handler: str, outcome: str) -> list:
        """A lead's outcome (won or lost), which does not change its score but counts its kept win
        prediction towards the model's realised performance; once per event, a batch in one transaction."""
        def work(uow, event):
            document = uow.find_one(LeadScoreDocument, {"_id": event["lead_id"]})
            if document is None:  # the deal closed before the lead reached scoring: nothing was predicted
                uow.update_one(LeadScoreDocument, {"_id": event["lead_id"]},
                               {"$set": {"outcome": outcome}, "$inc": {"revision": 1}}, upsert=True)
                return True
            document.outcome = outcome
            applied = Applied(document, realised=self._realised_change(document))
            uow.update_one(LeadScoreDocument, {"_id": document.id},
                           {"$set": {"outcome": outcome, "realised_label": document.realised_label},
                            "$inc": {"revision": 1}})
            _count_realised(uow, [applied])
            return True
        return self.store.run_once_each(events_, handler, one_by_one(work))

    def lineage(self, version: str) -> int | None:
        """The line of retrains a stored win model version belongs to."""
        line = self.live.win_line(version)
        return line[1] if line else None

    def realised(self, model: WinModelDocument) -> win_model.RealisedPerformance:
        """How the live predictions of ``model`` and of the retrains of its line have done."""
        stored = WinModelPerformanceDocument.objects(id=model.line).first()
        if stored is None:
            return win_model.realised_performance({}, {}, 0.0)
        return win_model.realised_performance(stored.positive_bins, stored.negative_bins, stored.squared_error)

    def record_owner(self, events_: list[dict], handler: str) -> list:
        """The owner routing chose (assigned or reassigned), applied newest first whatever the order."""
        def work(uow, event):
            return uow.apply_owner_change(
                LeadScoreDocument, event["lead_id"], {"owner_id": event["rep_id"], "owner_team": event.get("team", "")},
                int(event.get("owner_version") or 1), upsert=True, also={"$inc": {"revision": 1}})
        return self.store.run_once_each(events_, handler, one_by_one(work))

    # ---- background rescoring -------------------------------------------------------------------------

    def start_rescore(self, requested_by: str) -> RescoreJobDocument:
        now = utcnow()
        job = RescoreJobDocument(
            id=str(uuid.uuid4()), model_version=self.model().version, requested_by=requested_by, created_at=now,
            lease_until=now, total=LeadScoreDocument.objects(scored_at__ne=None, **NOT_MERGED).count())
        return jobs.start(job, "rescore job")

    def refuse_while_rescoring(self) -> None:
        jobs.refuse_while_running(RescoreJobDocument, "rescore job")

    def training(self, trained_by: str):
        """Held while a win model trains: training takes a core for seconds to minutes, so a second
        request waits for the first to finish instead of running beside it."""
        return jobs.exclusive(ScheduleDocument._get_collection(), "win-model-training", "win-model training",
                              trained_by, TRAINING_LEASE)

    def job(self, job_id: str) -> RescoreJobDocument:
        return get_or_not_found(RescoreJobDocument, job_id, "rescore job")

    def claim_job(self) -> RescoreJobDocument | None:
        return jobs.claim(RescoreJobDocument)

    def next_batch(self, job: RescoreJobDocument) -> list[LeadScoreDocument]:
        """The job's next leads in id order, whole: a range read, never an $in (which the embedded store
        answers with a scan), and the documents the batch's win probabilities are predicted from."""
        return list(LeadScoreDocument.objects(id__gt=job.cursor, scored_at__ne=None, **NOT_MERGED)
                    .order_by("id").limit(RESCORE_BATCH))

    def advance_job(self, job: RescoreJobDocument, processed: list[str], changed: int) -> None:
        jobs.advance(RescoreJobDocument, job.id, processed, changed=changed)

    def release_job(self, job: RescoreJobDocument) -> None:
        jobs.release(RescoreJobDocument, job.id)

    # ---- win models ---------------------------------------------------------------------------------------

    def training_examples(self, config_: win_model.TrainingConfig) -> list:
        examples = []
        fields = ("lead", "behaviour", "outcome")
        for document in LeadScoreDocument.objects(**NOT_MERGED).only(*fields).no_cache():
            label = win_model.label_of(document.lead or {}, document.outcome, config_)
            if label is None or not document.lead:
                continue
            counts = Counter(b.type for b in document.behaviour)
            examples.append(win_model.Example(document.lead, counts, label, document.lead.get("captured_at", "")))
        return examples

    def save_win_model(self, trained: win_model.TrainedModel, status: str, reason: str, trained_by: str,
                       seconds: float, lineage: int | None = None) -> WinModelDocument:
        """``lineage``: the line of the live model this one retrains with the same settings (None: it
        starts a line of its own)."""
        artefacts = gridfs.GridFS(self.store.db, collection="win_model_artefacts")
        artefact_id = artefacts.put(trained.to_bytes(), filename="win-model.joblib")

        def work(uow):
            document = WinModelDocument(
                id=uow.next_number(WinModelDocument), status=status, status_reason=reason,
                artefact_id=str(artefact_id), config={**asdict(trained.config)},
                evaluation=asdict(trained.evaluation), features=[c.name for c in trained.spec.columns],
                trained_at=utcnow(), trained_by=trained_by, training_seconds=seconds)
            document.lineage = lineage or document.id
            if status == "live":
                uow.update_one(WinModelDocument, {"status": "live"}, {"$set": {"status": "retired"}})
                uow.publish(*events.config_changed("win_model", f"{WIN_MODEL_PREFIX}{document.id}", trained_by))
            uow.insert(document)
            return document
        document = self.store.run_in_transaction(work)
        self.live.refresh(force=True)
        return document

    def win_model_document(self, version: int) -> WinModelDocument:
        if version:
            return get_or_not_found(WinModelDocument, version, "win model version")
        live = WinModelDocument.objects(status="live").first()
        if live is None:
            raise NotFound("win model", "live")
        return live

    def claim_schedule(self, name: str, every: timedelta) -> bool:
        """True for exactly one replica each time the schedule comes due."""
        now = utcnow()
        collection = ScheduleDocument._get_collection()
        collection.update_one({"_id": name}, {"$setOnInsert": {"next_run_at": now + every}}, upsert=True)
        return collection.find_one_and_update(
            {"_id": name, "next_run_at": {"$lte": now}}, {"$set": {"next_run_at": now + every}}) is not None


def _count_realised(uow, outcomes: list) -> None:
    """Add the outcomes counted in this transaction to their lines' realised sums: one increment per line."""
    by_model = {}
    for outcome in outcomes:
        if isinstance(outcome, Applied) and outcome.realised:
            number, increments = outcome.realised
            by_model.setdefault(number, Counter()).update(increments)
    for number, increments in by_model.items():
        uow.update_one(WinModelPerformanceDocument, {"_id": number}, {"$inc": dict(increments)}, upsert=True)


def _visible(score: domain.Score) -> tuple:
    """What a consumer of lead_scored can see; a rescore that changes none of it stays silent."""
    probability = None if score.win_probability is None else round(score.win_probability, 3)
    return (score.fit, score.engagement, score.total, score.grade, score.qualified, score.model_version,
            tuple(score.tags_added), tuple(score.tags_removed), probability,
            tuple((r.rule_id, r.points) for r in score.reasons))


def add_behaviour(event_: domain.BehaviourEvent):
    def change(document, uow):
        kept = domain.remember(behaviour_of(document), event_)
        if kept is None:
            return False
        document.behaviour = [BehaviourDocument(activity_id=e.activity_id, type=e.type, occurred_at=e.occurred_at)
                              for e in kept]
        return True
    return change


class ScoringStore(Store):
    documents = (LeadScoreDocument, ScoringModelDocument, RescoreJobDocument, WinModelDocument, ScheduleDocument,
                 WinModelPerformanceDocument)

    def setup(self):
        super().setup()
        self.live = _LiveCache(self.db)

    def get_dependency(self, worker_ctx):
        return ScoreRepository(self)


__all__ = ["ScoringStore", "ScoreRepository", "Applied", "add_behaviour", "DUPLICATE"]
