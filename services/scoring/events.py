"""Events scoring emits."""
from services.common.events import iso

LEAD_SCORED = "lead_scored"
LEAD_QUALIFIED = "lead_qualified"
LEAD_DISQUALIFIED = "lead_disqualified"
CONFIG_CHANGED = "config_changed"


def _summary(score) -> dict:
    return {"fit": score.fit, "engagement": score.engagement, "total": score.total, "qualified": score.qualified,
            "grade": score.grade, "model_version": score.model_version, "scored_at": iso(score.scored_at),
            "win_probability": score.win_probability, "win_model_version": score.win_model_version,
            "tags_added": list(score.tags_added), "tags_removed": list(score.tags_removed),
            "reasons": [{"rule_id": r.rule_id, "points": r.points} for r in score.reasons]}


def lead_scored(score, lead: dict):
    return LEAD_SCORED, {"lead_id": score.lead_id}, {"score": _summary(score), "source": lead.get("source", "")}


def lead_qualified(score, lead: dict):
    # Routing needs the whole lead (with the tags the model gave it) to match rules on; it never
    # reads capture's database.
    return LEAD_QUALIFIED, {"lead_id": score.lead_id}, {"score": _summary(score), "lead": lead}


def lead_disqualified(score, lead: dict):
    return LEAD_DISQUALIFIED, {"lead_id": score.lead_id}, {
        "score": _summary(score), "lead": lead, "reason": "score fell below the qualification threshold"}


def config_changed(kind: str, version: str, changed_by: str):
    return CONFIG_CHANGED, {"config_id": kind}, {"kind": kind, "version": version, "changed_by": changed_by}
