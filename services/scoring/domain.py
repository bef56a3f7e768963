"""Scoring's pure logic: the default fit rules, the total, and when a lead becomes an MQL.

The rule set is data (a list of rules with points), versioned, and every score records the
version that produced it; issue #4 makes models editable documents with engagement and decay.
"""
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

DECISION_MAKER_TITLE = re.compile(
    r"\b(ceo|cto|cfo|coo|cio|cmo|chief|founder|co-founder|owner|president|vp|vice president|director|head)\b"
    r"|总裁|总经理|总监|董事|创始人|负责人", re.IGNORECASE)
TARGET_INDUSTRIES = frozenset({"software", "saas", "technology", "manufacturing", "finance", "healthcare",
                               "education", "logistics", "retail"})
HIGH_INTENT_SOURCES = frozenset({"demo_request", "referral", "webinar", "event", "partner", "contact_sales"})
STUDENT_EMAIL = re.compile(r"(\.edu(\.[a-z]{2})?$|\bstudent)", re.IGNORECASE)


@dataclass(frozen=True)
class Rule:
    rule_id: str
    description: str
    points: int
    applies: Callable[[dict], bool]


@dataclass(frozen=True)
class ScoringModel:
    version: str
    threshold: int
    rules: tuple
    total_cap: int = 100


@dataclass(frozen=True)
class Reason:
    rule_id: str
    description: str
    points: int


@dataclass
class Score:
    lead_id: str
    fit: int
    engagement: int
    total: int
    qualified: bool
    threshold: int
    model_version: str
    reasons: list = field(default_factory=list)
    scored_at: datetime | None = None


DEFAULT_RULES = (
    Rule("fit.decision_maker_title", "title matches a decision-maker pattern", 25,
         lambda lead: bool(DECISION_MAKER_TITLE.search(lead.get("title", "")))),
    Rule("fit.company_size_50_plus", "company has 50 or more employees", 15,
         lambda lead: 50 <= lead.get("company_size", 0) < 500),
    Rule("fit.company_size_500_plus", "company has 500 or more employees", 25,
         lambda lead: lead.get("company_size", 0) >= 500),
    Rule("fit.target_industry", "industry is one we sell to", 10,
         lambda lead: lead.get("industry", "") in TARGET_INDUSTRIES),
    Rule("fit.business_email", "email is on a company domain", 15,
         lambda lead: bool(lead.get("company_domain"))),
    Rule("fit.reachable_by_phone", "phone number given", 10, lambda lead: bool(lead.get("phone_e164"))),
    Rule("fit.marketing_consent", "agreed to marketing contact", 5,
         lambda lead: bool(lead.get("marketing_consent"))),
    Rule("intent.high_intent_source", "came from a high-intent channel", 20,
         lambda lead: lead.get("source", "") in HIGH_INTENT_SOURCES),
    Rule("fit.student_email", "student email address", -20,
         lambda lead: bool(STUDENT_EMAIL.search(lead.get("email", "")))),
)


def default_model(threshold: int = 60) -> ScoringModel:
    return ScoringModel(version="default@1", threshold=threshold, rules=DEFAULT_RULES)


def score_lead(lead: dict, model: ScoringModel, scored_at: datetime) -> Score:
    reasons = [Reason(rule.rule_id, rule.description, rule.points) for rule in model.rules if rule.applies(lead)]
    fit = sum(r.points for r in reasons if not r.rule_id.startswith("engagement."))
    engagement = sum(r.points for r in reasons if r.rule_id.startswith("engagement."))
    total = max(0, min(model.total_cap, fit + engagement))
    return Score(lead_id=lead["lead_id"], fit=fit, engagement=engagement, total=total,
                 qualified=total >= model.threshold, threshold=model.threshold,
                 model_version=model.version, reasons=reasons, scored_at=scored_at)


def newly_qualified(previous: Score | None, current: Score) -> bool:
    """lead_qualified is emitted once per crossing of the threshold, not on every rescore."""
    return current.qualified and not (previous and previous.qualified)
