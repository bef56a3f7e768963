"""Scoring: domain <-> document <-> proto."""
from leadflow.scoring.v1 import scoring_pb2

from services.common.mappers import to_timestamp
from services.scoring.domain import Reason, Score
from services.scoring.models import LeadScoreDocument, ReasonDocument

_FIELDS = ("fit", "engagement", "total", "qualified", "threshold", "model_version", "scored_at")


def score_to_document(score: Score, lead: dict) -> LeadScoreDocument:
    return LeadScoreDocument(
        id=score.lead_id, lead=lead, reasons=[ReasonDocument(**vars(r)) for r in score.reasons],
        **{name: getattr(score, name) for name in _FIELDS})


def score_from_document(document: LeadScoreDocument) -> Score:
    return Score(lead_id=document.id, reasons=[Reason(r.rule_id, r.description, r.points) for r in document.reasons],
                 **{name: getattr(document, name) for name in _FIELDS})


def score_to_proto(score: Score) -> scoring_pb2.LeadScore:
    return scoring_pb2.LeadScore(
        lead_id=score.lead_id, fit=score.fit, engagement=score.engagement, total=score.total,
        qualified=score.qualified, threshold=score.threshold, model_version=score.model_version,
        reasons=[scoring_pb2.ScoreReason(rule_id=r.rule_id, description=r.description, points=r.points)
                 for r in score.reasons],
        scored_at=to_timestamp(score.scored_at))
