"""Scoring's repository."""
from services.common.store import Store, get_or_not_found
from services.scoring import events
from services.scoring.domain import newly_qualified
from services.scoring.mappers import score_from_document, score_to_document
from services.scoring.models import LeadScoreDocument


class ScoreRepository:
    def __init__(self, store: Store):
        self.store = store

    def record_once(self, event: dict, handler: str, score, lead: dict):
        """Save the score and its events once per delivered event; True if the lead newly qualified
        (DUPLICATE when this event was handled before)."""
        return self.store.run_once(event, handler, lambda uow: self._record(uow, score, lead))

    def _record(self, uow, score, lead: dict) -> bool:
        previous_doc = uow.find_one(LeadScoreDocument, {"_id": score.lead_id})
        previous = score_from_document(previous_doc) if previous_doc else None
        uow.replace(score_to_document(score, lead))
        uow.publish(*events.lead_scored(score, lead))
        qualified = newly_qualified(previous, score)
        if qualified:
            uow.publish(*events.lead_qualified(score, lead))
        return qualified

    def get(self, lead_id: str):
        document = get_or_not_found(LeadScoreDocument, lead_id, "lead score")
        return score_from_document(document)


class ScoringStore(Store):
    documents = (LeadScoreDocument,)

    def get_dependency(self, worker_ctx):
        return ScoreRepository(self)
