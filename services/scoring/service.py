"""Scoring service: scores every captured lead on fit and behaviour, hands MQLs to routing, keeps the
score current as time passes, and predicts wins from history."""
import logging
import time
from collections import Counter
from datetime import timedelta

from leadflow.common.v1 import common_pb2
from leadflow.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from nameko import config

from services.common import metrics
from services.common.auth import Role, can_see_lead
from services.common.compute import off_the_hub
from services.common.errors import FailedPrecondition, NotFound
from services.common.events import parse_iso, utcnow
from services.common.mappers import next_page_token, page_window
from services.common.messaging import event_handler
from services.common.rpc import LeadflowGrpc
from services.common.service_base import LeadflowService
from services.common.store import DUPLICATE
from services.common.timers import configured_timer
from services.scoring import domain, mappers, win_model
from services.scoring.dependencies import MODEL_PREFIX, Applied, ScoringStore, add_behaviour
from services.scoring.models import LeadScoreDocument

log = logging.getLogger(__name__)
scoring_rpc = LeadflowGrpc.implementing(scoring_pb2_grpc.ScoringServiceStub)
ADMINS = {Role.ADMIN}
READERS = {Role.ADMIN, Role.MANAGER, Role.INTEGRATION}
TICK_BUDGET_SECONDS = 3.0
# Leads rescored per transaction: one commit for many, yet small enough that a lead changed by an event
# meanwhile (which runs the slice again) costs little.
RESCORE_SLICE = 50
_QUALIFIED_FILTER = {scoring_pb2.QUALIFIED_FILTER_QUALIFIED: True, scoring_pb2.QUALIFIED_FILTER_NOT_QUALIFIED: False}


def _set_lead(lead: dict):
    def change(document, uow):
        document.lead = lead
        return True
    return change


class ScoringService(LeadflowService):
    name = "scoring"
    scores = ScoringStore()

    # ---- events ---------------------------------------------------------------------------------------

    def _count(self, outcomes: list) -> list:
        for outcome in outcomes:
            if isinstance(outcome, Applied) and outcome.changed:
                metrics.LEADS_SCORED.inc()
                if outcome.qualified:
                    metrics.LEADS_QUALIFIED.inc()
        return outcomes

    # Each handler takes a batch of events (services.common.messaging.BatchEventHandler) and answers
    # one outcome per event.

    @event_handler("capture", "lead_captured")
    def handle_lead_captured(self, events):
        return self._count(self.scores.apply_each(
            [(event["lead"]["lead_id"], _set_lead(event["lead"]), event) for event in events], "handle_lead_captured"))

    @event_handler("capture", "lead_merged")
    def handle_lead_merged(self, events):
        # A merge writes two leads' documents: one event, one transaction (merges are rare).
        return self._count([self._merged(event) for event in events])

    def _merged(self, event):
        lead, duplicate_id = event["lead"], event.get("merged_lead_id", "")

        def change(document, uow):
            document.lead = lead
            if duplicate_id:
                # The duplicate's behaviour now belongs to the surviving lead; the duplicate leaves the lists.
                duplicate = uow.find_one(LeadScoreDocument, {"_id": duplicate_id})
                if duplicate is not None:
                    seen = {b.activity_id for b in document.behaviour}
                    document.behaviour = [*document.behaviour, *(b for b in duplicate.behaviour
                                                                 if b.activity_id not in seen)]
                    document.behaviour = sorted(document.behaviour, key=lambda b: b.occurred_at,
                                                reverse=True)[:domain.MAX_BEHAVIOUR_KEPT]
                    uow.update_one(LeadScoreDocument, {"_id": duplicate_id},
                                   {"$set": {"merged_into": lead["lead_id"], "next_change_at": None},
                                    "$inc": {"revision": 1}})
            return True
        return self.scores.apply(lead["lead_id"], change, event, "handle_lead_merged")

    @event_handler("capture", "lead_unmerged")
    def handle_lead_unmerged(self, events):
        return self._count([self._unmerged(event) for event in events])

    def _unmerged(self, event):
        restored, primary = event["lead"], event["primary"]

        def change(document, uow):
            document.lead, document.merged_into = restored, ""
            return True
        outcome = self.scores.apply(restored["lead_id"], change, event, "handle_lead_unmerged")
        if outcome is not DUPLICATE:
            # The primary's snapshot lost the restored lead's contacts; its score follows.
            self.scores.apply(primary["lead_id"], _set_lead(primary))
        return outcome

    @event_handler("capture", "lead_activity_recorded")
    def handle_lead_activity_recorded(self, events):
        return self._count(self.scores.apply_each([
            (event["lead_id"], add_behaviour(domain.BehaviourEvent(
                event["activity_id"], event["type"], parse_iso(event["activity_occurred_at"]))), event)
            for event in events], "handle_lead_activity_recorded"))

    @event_handler("opportunity", "opportunity_won")
    def handle_opportunity_won(self, events):
        return self._outcomes_of_deals(events, "handle_opportunity_won", "won")

    @event_handler("opportunity", "opportunity_lost")
    def handle_opportunity_lost(self, events):
        return self._outcomes_of_deals(events, "handle_opportunity_lost", "lost")

    def _outcomes_of_deals(self, events, handler: str, outcome: str) -> list:
        # A deal not born from a lead teaches the win model nothing about leads.
        from_leads = [event for event in events if event.get("lead_id")]
        recorded = iter(self.scores.record_outcomes(from_leads, handler, outcome) if from_leads else ())
        return [next(recorded) if event.get("lead_id") else None for event in events]

    @event_handler("routing", "lead_assigned")
    def handle_lead_assigned(self, events):
        """The owner decides who may read the score: reps their own leads, managers their team's."""
        return self.scores.record_owner(events, "handle_lead_assigned")

    @event_handler("routing", "lead_reassigned")
    def handle_lead_reassigned(self, events):
        return self.scores.record_owner(events, "handle_lead_reassigned")

    # ---- time ------------------------------------------------------------------------------------------

    # Decay, rescore jobs and the retrain schedule are checked this often.
    @configured_timer("SCORING_TIMER_SECONDS", 5.0)
    def tick(self):
        """Decay and windows change scores with nothing new happening; rescore jobs advance; the
        scheduled retrain runs. Each step is safe to run on several replicas at once."""
        # Work until the next tick is due (the timer then starts it at once): a rescore goes on without
        # idle gaps, and the hub stays free meanwhile (predictions off it, every write a yield).
        deadline = time.monotonic() + max(TICK_BUDGET_SECONDS, float(config.get("SCORING_TIMER_SECONDS", 5.0)))
        previous = None
        while time.monotonic() < deadline:
            due = self.scores.due_for_decay(utcnow())
            if not due or [d.id for d in due] == previous:
                break  # nothing (more) due, or the leads left could not be moved on
            self._rescore(due, deadline)
            previous = [d.id for d in due]
        job = self.scores.claim_job()
        while job is not None and time.monotonic() < deadline:
            batch = self.scores.next_batch(job)
            done, changed = self._rescore(batch, deadline)
            self.scores.advance_job(job, done, changed)
            if not batch:
                job = None  # done
                break
            job.cursor = done[-1]
        if job is not None:
            self.scores.release_job(job)  # the next tick goes on at once
        self._export_win_model_performance()
        hours = float(config.get("WIN_MODEL_RETRAIN_HOURS", 24))
        if hours > 0 and self.scores.claim_schedule("win-model-retrain", timedelta(hours=hours)):
            self._scheduled_retrain()

    def _export_win_model_performance(self):
        """The live model's trained and realised figures as gauges, for the alert on a model that does
        worse on new leads than its training promised (every replica exports the same figures)."""
        try:
            live = self.scores.win_model_document(0)
        except NotFound:
            metrics.export_win_model_performance(None, None)
            return
        metrics.export_win_model_performance(live.evaluation["roc_auc"], self.scores.realised(live))

    def _rescore(self, documents: list, deadline: float) -> tuple[list[str], int]:
        """Recompute these leads' scores, their win probabilities predicted together off the hub, a slice
        of leads per transaction; stops once the deadline has passed, so a timer turn stays bounded.
        Returns the ids done (at least one slice, when there are any) and how many scores changed."""
        predicted = self.scores.predict_wins(documents)
        done, changed = [], 0
        for start in range(0, len(documents), RESCORE_SLICE):
            piece = documents[start:start + RESCORE_SLICE]
            changed += sum(bool(outcome.changed) for outcome in self._count(self.scores.rescore(piece, predicted)))
            done.extend(d.id for d in piece)
            if time.monotonic() > deadline:
                break
        return done, changed

    def _scheduled_retrain(self):
        try:
            live = self.scores.win_model_document(0)
        except NotFound:  # nothing live yet: the first model is trained on request
            return
        config_ = win_model.TrainingConfig.from_dict(live.config)
        try:
            self._train(config_, force=False, trained_by="schedule")
        except FailedPrecondition as error:
            log.warning("scheduled win-model retrain skipped: %s", error)

    # ---- gRPC: scores -----------------------------------------------------------------------------------

    @scoring_rpc
    def GetLeadScore(self, request, context):
        document = self.scores.get(request.lead_id)
        if not can_see_lead(self.caller, document.owner_id, document.owner_team):
            raise NotFound("lead score", request.lead_id)
        return scoring_pb2.GetLeadScoreResponse(
            score=mappers.score_to_proto(document, self.scores.explain_win(document)))

    @scoring_rpc(roles=READERS)
    def ListLeadScores(self, request, context):
        offset, limit = page_window(request.page)
        documents = self.scores.search(
            request.grade.strip().upper(), _QUALIFIED_FILTER.get(request.qualified),
            request.min_total if request.HasField("min_total") else None,
            request.max_total if request.HasField("max_total") else None, offset, limit)
        return scoring_pb2.ListLeadScoresResponse(
            scores=[mappers.score_to_proto(d) for d in documents],
            page=common_pb2.PageResponse(next_page_token=next_page_token(offset, limit, len(documents))))

    # ---- gRPC: the scoring model ------------------------------------------------------------------------

    @scoring_rpc(roles=ADMINS)
    def PutScoringModel(self, request, context):
        definition = mappers.definition_from_proto(request.definition)
        domain.compile_model(definition, "candidate")  # InvalidArgument names each bad rule and field
        if request.validate_only:
            return scoring_pb2.PutScoringModelResponse(model=mappers.model_to_proto(0, definition))
        if request.rescore:  # refused before the model changes, so the request can be sent again as is
            self.scores.refuse_while_rescoring()
        document = self.scores.put_model(definition, self.caller.id)
        response = scoring_pb2.PutScoringModelResponse(model=mappers.model_to_proto(
            document.id, document.definition, document.created_at, document.created_by, live=True,
            version=f"{MODEL_PREFIX}{document.id}"))
        if request.rescore:
            response.rescore_job.CopyFrom(mappers.job_to_proto(self.scores.start_rescore(self.caller.id)))
        return response

    @scoring_rpc
    def GetScoringModel(self, request, context):
        live = self.scores.model_document(0)
        document = self.scores.model_document(request.number) if request.number else live
        if document is None:
            return scoring_pb2.GetScoringModelResponse(model=mappers.model_to_proto(
                0, domain.BUILTIN_DEFINITION, live=True, version=domain.BUILTIN_VERSION))
        return scoring_pb2.GetScoringModelResponse(model=mappers.model_to_proto(
            document.id, document.definition, document.created_at, document.created_by,
            live=document.id == live.id, version=f"{MODEL_PREFIX}{document.id}"))

    @scoring_rpc(roles={Role.ADMIN, Role.MANAGER})
    def ListScoringModelVersions(self, request, context):
        offset, limit = page_window(request.page)
        documents = self.scores.model_versions(offset, limit)
        live = self.scores.model_document(0)
        live_id = live.id if live else None
        return scoring_pb2.ListScoringModelVersionsResponse(
            models=[mappers.model_to_proto(d.id, d.definition, d.created_at, d.created_by, live=d.id == live_id,
                                           version=f"{MODEL_PREFIX}{d.id}") for d in documents],
            page=common_pb2.PageResponse(next_page_token=next_page_token(offset, limit, len(documents))))

    @scoring_rpc(roles=ADMINS)
    def RescoreLeads(self, request, context):
        return scoring_pb2.RescoreLeadsResponse(job=mappers.job_to_proto(self.scores.start_rescore(self.caller.id)))

    @scoring_rpc(roles={Role.ADMIN, Role.MANAGER})
    def GetRescoreJob(self, request, context):
        return scoring_pb2.GetRescoreJobResponse(job=mappers.job_to_proto(self.scores.job(request.job_id)))

    # ---- gRPC: win probability --------------------------------------------------------------------------

    def _train(self, config_, force: bool, trained_by: str):
        config_ = win_model.validate_config(config_)
        with self.scores.training(trained_by):
            return self._train_exclusively(config_, force, trained_by)

    def _train_exclusively(self, config_, force: bool, trained_by: str):
        examples = self.scores.training_examples(config_)
        started = time.monotonic()
        trained = off_the_hub(win_model.train, examples, config_)
        seconds = time.monotonic() - started
        live = self.scores.win()
        # The live model's settings, cross-validated on the challenger's folds (None: the same settings).
        live_auc = off_the_hub(win_model.challenge, trained, live.model.config, examples) if live else None
        ours = f"cross-validated ROC-AUC {trained.evaluation.roc_auc:.3f}"
        if not force and win_model.is_worse(trained.evaluation, live_auc):
            status, reason = "rejected", f"{ours} is below {live.version}'s settings' {live_auc:.3f} on the same folds"
        else:
            status = "live"
            if live is None:
                reason = f"first model; {ours}"
            elif live_auc is None:
                reason = f"{live.version}'s settings retrained on the leads known now; {ours}"
            elif force and win_model.is_worse(trained.evaluation, live_auc):
                reason = f"forced over {live.version}: {ours} vs its settings' {live_auc:.3f} on the same folds"
            else:
                reason = f"{ours} vs {live.version}'s settings' {live_auc:.3f} on the same folds"
        metrics.WIN_MODEL_TRAININGS.labels(status).inc()
        # A retrain with exactly the live settings (the schedule's) carries on its line of realised figures.
        lineage = None
        if live is not None and live.model.config == trained.config:
            lineage = self.scores.lineage(live.version)
        return self.scores.save_win_model(trained, status, reason, trained_by, seconds, lineage)

    @scoring_rpc(roles=ADMINS)
    def TrainWinModel(self, request, context):
        document = self._train(mappers.training_config_from_proto(request.config), request.force, self.caller.id)
        return scoring_pb2.TrainWinModelResponse(
            model=mappers.win_model_to_proto(document, self.scores.realised(document)))

    @scoring_rpc(roles=READERS)
    def GetWinModel(self, request, context):
        document = self.scores.win_model_document(request.number)
        return scoring_pb2.GetWinModelResponse(
            model=mappers.win_model_to_proto(document, self.scores.realised(document)))

    @scoring_rpc
    def PredictWinProbability(self, request, context):
        live = self.scores.win()
        if live is None:
            raise FailedPrecondition("no win model is live yet: train one with TrainWinModel")
        lead = mappers.lead_from_fields(dict(request.fields))
        probability, factors = win_model.predict_with_factors(live.model, lead, Counter(request.behaviour_counts))
        return scoring_pb2.PredictWinProbabilityResponse(
            win_probability=probability, win_model_version=live.version,
            factors=[mappers.factor_to_proto(f) for f in factors])

