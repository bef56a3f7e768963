"""Events scoring emits."""
from services.common.events import iso

LEAD_SCORED = "lead_scored"
LEAD_QUALIFIED = "lead_qualified"


def _summary(score) -> dict:
    return {"fit": score.fit, "engagement": score.engagement, "total": score.total, "qualified": score.qualified,
            "model_version": score.model_version, "scored_at": iso(score.scored_at),
            "reasons": [{"rule_id": r.rule_id, "points": r.points} for r in score.reasons]}


def lead_scored(score, lead: dict):
    return LEAD_SCORED, {"lead_id": score.lead_id}, {"score": _summary(score), "source": lead.get("source", "")}


def lead_qualified(score, lead: dict):
    # Routing needs the whole lead to match rules on; it never reads capture's database.
    return LEAD_QUALIFIED, {"lead_id": score.lead_id}, {"score": _summary(score), "lead": lead}
