"""Scoring service: scores every captured lead and hands MQLs to routing."""
from leadflow.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from nameko import config

from services.common import metrics
from services.common.events import utcnow
from services.common.messaging import event_handler
from services.common.rpc import LeadflowGrpc
from services.common.service_base import LeadflowService
from services.common.store import DUPLICATE
from services.scoring import domain, mappers
from services.scoring.dependencies import ScoringStore

scoring_rpc = LeadflowGrpc.implementing(scoring_pb2_grpc.ScoringServiceStub)


class ScoringService(LeadflowService):
    name = "scoring"
    scores = ScoringStore()

    @event_handler("capture", "lead_captured")
    def handle_lead_captured(self, event):
        lead = event["lead"]
        score = domain.score_lead(lead, domain.default_model(config["SCORING_MQL_THRESHOLD"]), utcnow())
        outcome = self.scores.record_once(event, "handle_lead_captured", score, lead)
        if outcome is True:
            metrics.LEADS_QUALIFIED.inc()
        if outcome is not DUPLICATE:
            metrics.LEADS_SCORED.inc()
        return outcome

    @scoring_rpc
    def GetLeadScore(self, request, context):
        score = self.scores.get(request.lead_id)
        return scoring_pb2.GetLeadScoreResponse(score=mappers.score_to_proto(score))
