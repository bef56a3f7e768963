"""Scoring's pure logic: scoring models as data, their validation, and what a lead scores now.

A scoring model is a document an admin writes (YAML through ``leadflow config apply`` or JSON through
``PutScoringModel``). ``compile_model`` checks every part of it, naming the exact path of each mistake,
and turns it into predicates; ``score_lead`` applies a compiled model to a lead snapshot and the lead's
behaviour at a given moment. Time enters only as the ``now`` argument, so decay is testable by hand and
``next_change_at`` tells the service when a score will change with nothing new happening.
"""
import math
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from services.common.errors import FieldViolation, InvalidArgument
from services.common.conditions import LEAD_FIELDS, Condition, ConditionCompiler
from services.common.events import ACTIVITY_TYPES

BUILTIN_VERSION = "builtin"
MAX_BEHAVIOUR_KEPT = 500  # newest events a score keeps; older ones no longer move a decayed score
MAX_RULES = 200
GROUP_KINDS = ("fit", "engagement")

SCORE_FIELDS = ("score.fit", "score.engagement", "score.total")  # only tag rules see the score


@dataclass(frozen=True)
class BehaviourEvent:
    activity_id: str
    type: str
    occurred_at: datetime


@dataclass(frozen=True)
class FitCriterion:
    rule_id: str
    description: str
    points: int
    when: Condition


@dataclass(frozen=True)
class EngagementCriterion:
    rule_id: str
    description: str
    event: str
    points: int
    max_count: int | None
    within_days: int | None


@dataclass(frozen=True)
class Decay:
    """Either points lose ``percent`` every ``every_days`` (step by step), or only events of the
    last ``window_days`` count."""

    percent: float = 0.0
    every_days: int = 0
    window_days: int = 0


@dataclass(frozen=True)
class Group:
    group_id: str
    kind: str
    cap: int | None
    criteria: tuple
    decay: Decay | None = None


@dataclass(frozen=True)
class TagRule:
    rule_id: str
    tag: str
    add: bool
    when: Condition


@dataclass(frozen=True)
class ScoringModel:
    version: str
    threshold: int
    total_cap: int
    groups: tuple
    tag_rules: tuple = ()
    emit_disqualified: bool = False
    fit_grades: tuple = (("A", 60), ("B", 35), ("C", 15))  # below the last: D
    engagement_grades: tuple = (("1", 30), ("2", 10))  # below the last: 3
    windows: tuple = ()


@dataclass(frozen=True)
class Reason:
    rule_id: str
    description: str
    points: int
    group: str = ""
    base_points: int = 0  # before decay; equal to points for fit rules
    count: int = 0  # events counted (engagement)


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
    grade: str = ""
    tags_added: list = field(default_factory=list)
    tags_removed: list = field(default_factory=list)
    next_change_at: datetime | None = None
    win_probability: float | None = None
    win_model_version: str = ""

    @property
    def decay_points(self) -> int:
        return sum(r.base_points - r.points for r in self.reasons)


# ---- compiling a model document -------------------------------------------------------------------

def compile_model(definition: dict, version: str) -> ScoringModel:
    """Check a model document and compile it; InvalidArgument lists every mistake with its path
    (``groups[1].criteria[0].points``), so an admin fixes them all in one go."""
    c = ConditionCompiler(LEAD_FIELDS)
    if not isinstance(definition, dict):
        raise InvalidArgument([FieldViolation("model", "must be a mapping")])
    c.known_keys(definition, ("description", "threshold", "total_cap", "emit_disqualified", "grades", "groups",
                              "tag_rules"), "")
    threshold = c.integer(definition.get("threshold", 60), "threshold", 1, 10_000)
    total_cap = c.integer(definition.get("total_cap", 100), "total_cap", 1, 10_000)
    if threshold is not None and total_cap is not None and threshold > total_cap:
        c.fail("threshold", f"must not exceed total_cap ({total_cap}), or no lead could ever qualify")
    emit_disqualified = definition.get("emit_disqualified", False)
    if not isinstance(emit_disqualified, bool):
        c.fail("emit_disqualified", "must be true or false")
    fit_grades, engagement_grades = _grades(c, definition.get("grades", {}))
    groups = _groups(c, definition.get("groups"))
    tag_rules = _tag_rules(c, definition.get("tag_rules", []))
    if c.violations:
        raise InvalidArgument(c.violations)
    return ScoringModel(version=version, threshold=threshold, total_cap=total_cap, groups=tuple(groups),
                        tag_rules=tuple(tag_rules), emit_disqualified=emit_disqualified,
                        fit_grades=fit_grades, engagement_grades=engagement_grades,
                        windows=tuple(sorted(c.windows)))


def _grades(c: ConditionCompiler, spec) -> tuple:
    defaults = ScoringModel.fit_grades, ScoringModel.engagement_grades
    if not isinstance(spec, dict):
        c.fail("grades", "must be a mapping with fit and engagement thresholds")
        return defaults
    c.known_keys(spec, ("fit", "engagement"), "grades")
    result = []
    for name, labels, default in (("fit", ("A", "B", "C"), defaults[0]), ("engagement", ("1", "2"), defaults[1])):
        given = spec.get(name)
        if given is None:
            result.append(default)
            continue
        if not isinstance(given, dict) or set(map(str, given)) != set(labels):
            c.fail(f"grades.{name}", f"must give a minimum for each of {', '.join(labels)}")
            result.append(default)
            continue
        values = {str(k): c.integer(v, f"grades.{name}.{k}", -10_000, 10_000) for k, v in given.items()}
        ordered = [values[label] for label in labels]
        if None not in ordered and ordered != sorted(ordered, reverse=True):
            c.fail(f"grades.{name}", f"minimums must fall from {labels[0]} to {labels[-1]}")
        result.append(tuple((label, values[label] or 0) for label in labels))
    return tuple(result)


def _groups(c: ConditionCompiler, spec) -> list:
    if not isinstance(spec, list) or not spec:
        c.fail("groups", "must be a non-empty list of score groups")
        return []
    groups, group_ids, rule_ids, rules = [], set(), set(), 0
    for g, group in enumerate(spec):
        path = f"groups[{g}]"
        if not isinstance(group, dict):
            c.fail(path, "must be a mapping")
            continue
        c.known_keys(group, ("id", "kind", "cap", "decay", "criteria", "description"), path)
        group_id = c.identifier(group.get("id"), f"{path}.id")
        if group_id in group_ids:
            c.fail(f"{path}.id", f"group {group_id!r} is defined twice")
        group_ids.add(group_id)
        kind = group.get("kind")
        if kind not in GROUP_KINDS:
            c.fail(f"{path}.kind", "must be fit or engagement")
            continue
        cap = c.integer(group.get("cap"), f"{path}.cap", 1, 10_000, required=False)
        decay = _decay(c, group.get("decay"), f"{path}.decay") if kind == "engagement" else None
        if kind == "fit" and "decay" in group:
            c.fail(f"{path}.decay", "only engagement groups decay")
        criteria = group.get("criteria")
        if not isinstance(criteria, list) or not criteria:
            c.fail(f"{path}.criteria", "must be a non-empty list")
            continue
        compiled = []
        for i, criterion in enumerate(criteria):
            where = f"{path}.criteria[{i}]"
            rules += 1
            if not isinstance(criterion, dict):
                c.fail(where, "must be a mapping")
                continue
            made = (_fit_criterion if kind == "fit" else _engagement_criterion)(c, criterion, where, group_id or "")
            if made is None:
                continue
            if made.rule_id in rule_ids:
                c.fail(f"{where}.id", f"rule {made.rule_id!r} is defined twice")
            rule_ids.add(made.rule_id)
            compiled.append(made)
        groups.append(Group(group_id or "", kind, cap, tuple(compiled), decay))
    if rules > MAX_RULES:
        c.fail("groups", f"at most {MAX_RULES} criteria in a model (got {rules})")
    return groups


def _decay(c: ConditionCompiler, spec, path: str) -> Decay | None:
    if spec is None:
        return None
    if not isinstance(spec, dict):
        c.fail(path, "must be {percent, every_days} or {window_days}")
        return None
    c.known_keys(spec, ("percent", "every_days", "window_days"), path)
    if "window_days" in spec:
        if "percent" in spec or "every_days" in spec:
            c.fail(path, "choose either percent/every_days or window_days, not both")
        window = c.integer(spec["window_days"], f"{path}.window_days", 1, 3650)
        return Decay(window_days=window) if window else None
    percent = spec.get("percent")
    if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 < percent <= 100:
        c.fail(f"{path}.percent", "must be a number above 0 and at most 100")
        percent = None
    every = c.integer(spec.get("every_days"), f"{path}.every_days", 1, 3650)
    return Decay(percent=float(percent), every_days=every) if percent and every else None


def _rule_basics(c: ConditionCompiler, spec: dict, path: str, group_id: str, keys: tuple) -> tuple:
    c.known_keys(spec, keys, path)
    criterion_id = c.identifier(spec.get("id"), f"{path}.id")
    points = c.integer(spec.get("points"), f"{path}.points", -1000, 1000)
    if points == 0:
        c.fail(f"{path}.points", "must not be 0")
    description = spec.get("description", "")
    if not isinstance(description, str) or len(description) > 200:
        c.fail(f"{path}.description", "must be a text of at most 200 characters")
        description = ""
    return (f"{group_id}.{criterion_id}" if criterion_id else None), points, description


def _fit_criterion(c: ConditionCompiler, spec: dict, path: str, group_id: str) -> FitCriterion | None:
    rule_id, points, description = _rule_basics(c, spec, path, group_id, ("id", "description", "points", "when"))
    when = c.condition(spec.get("when"), f"{path}.when", fields=LEAD_FIELDS)
    if when:
        c.windows.update(when.windows)
    if None in (rule_id, points, when):
        return None
    return FitCriterion(rule_id, description or rule_id, points, when)


def _engagement_criterion(c: ConditionCompiler, spec: dict, path: str, group_id: str) -> EngagementCriterion | None:
    rule_id, points, description = _rule_basics(
        c, spec, path, group_id, ("id", "description", "points", "event", "max_count", "within_days"))
    event = spec.get("event")
    if event not in ACTIVITY_TYPES:
        c.fail(f"{path}.event", f"unknown event {event!r}; expected one of {', '.join(ACTIVITY_TYPES)}")
        event = None
    max_count = c.integer(spec.get("max_count"), f"{path}.max_count", 1, 10_000, required=False)
    within = c.integer(spec.get("within_days"), f"{path}.within_days", 1, 3650, required=False)
    if None in (rule_id, points, event) or ("max_count" in spec and max_count is None) \
            or ("within_days" in spec and within is None):
        return None
    return EngagementCriterion(rule_id, description or f"{points} points per {event}", event, points, max_count, within)


def _tag_rules(c: ConditionCompiler, spec) -> list:
    if not isinstance(spec, list):
        c.fail("tag_rules", "must be a list")
        return []
    rules, seen = [], set()
    for i, rule in enumerate(spec):
        path = f"tag_rules[{i}]"
        if not isinstance(rule, dict):
            c.fail(path, "must be a mapping")
            continue
        c.known_keys(rule, ("id", "tag", "action", "when"), path)
        rule_id = c.identifier(rule.get("id"), f"{path}.id")
        if rule_id in seen:
            c.fail(f"{path}.id", f"tag rule {rule_id!r} is defined twice")
        seen.add(rule_id)
        tag = rule.get("tag")
        if not isinstance(tag, str) or not re.fullmatch(r"[^\s,]{1,64}", tag or ""):
            c.fail(f"{path}.tag", "must be 1-64 characters without spaces or commas")
            tag = None
        action = rule.get("action", "add")
        if action not in ("add", "remove"):
            c.fail(f"{path}.action", "must be add or remove")
        when = c.condition(rule.get("when"), f"{path}.when", fields=LEAD_FIELDS + SCORE_FIELDS)
        if when:
            c.windows.update(when.windows)
        if None not in (rule_id, tag, when):
            rules.append(TagRule(f"tag.{rule_id}", tag.lower(), action == "add", when))
    return rules


# ---- scoring -------------------------------------------------------------------------------------------

def _rounded(points: float) -> int:
    """Half away from zero, so -2.5 and 2.5 decay alike."""
    return int(math.copysign(math.floor(abs(points) + 0.5), points))


def _decay_factor(decay: Decay | None, age: timedelta) -> float:
    if decay is None or not decay.percent:
        return 1.0
    steps = max(0, int(age / timedelta(days=decay.every_days)))
    return (1 - decay.percent / 100) ** steps


def _engagement(group: Group, behaviour: list, now: datetime) -> tuple[list, list]:
    """Reasons of one engagement group, and the moments at which its points will change by time alone."""
    reasons, changes = [], []
    window = timedelta(days=group.decay.window_days) if group.decay and group.decay.window_days else None
    for criterion in group.criteria:
        limit = timedelta(days=criterion.within_days) if criterion.within_days else None
        windows = [w for w in (window, limit) if w]
        horizon = min(windows) if windows else None
        matching = sorted((e for e in behaviour if e.type == criterion.event), key=lambda e: e.occurred_at,
                          reverse=True)
        counted = [e for e in matching if horizon is None or now - e.occurred_at < horizon]
        counted = counted[:criterion.max_count] if criterion.max_count else counted
        if not counted:
            continue
        values = []
        for event in counted:
            age = max(now - event.occurred_at, timedelta(0))
            factor = _decay_factor(group.decay, age)
            values.append(criterion.points * factor)
            if horizon is not None:
                changes.append(event.occurred_at + horizon)
            if group.decay and group.decay.percent and abs(criterion.points * factor) >= 0.05:
                period = timedelta(days=group.decay.every_days)
                changes.append(event.occurred_at + period * (int(age / period) + 1))
        base = criterion.points * len(counted)
        reasons.append(Reason(criterion.rule_id, criterion.description, _rounded(sum(values)), group.group_id,
                              base, len(counted)))
    return reasons, changes


def _capped(points: int, cap: int | None) -> int:
    return min(points, cap) if cap is not None else points


def _grade(model: ScoringModel, fit: int, engagement: int) -> str:
    letter = next((label for label, minimum in model.fit_grades if fit >= minimum), "D")
    digit = next((label for label, minimum in model.engagement_grades if engagement >= minimum), "3")
    return letter + digit


def score_lead(lead: dict, model: ScoringModel, scored_at: datetime, behaviour: list = ()) -> Score:
    """What ``lead`` scores under ``model`` at ``scored_at``, given what it did (``behaviour``)."""
    behaviour = [e for e in behaviour if e.occurred_at <= scored_at + timedelta(minutes=5)]
    facts = {"lead": lead, "behaviour": behaviour}
    reasons, changes, totals = [], [], {"fit": 0, "engagement": 0}
    for group in model.groups:
        if group.kind == "fit":
            fired = [Reason(c.rule_id, c.description, c.points, group.group_id, c.points)
                     for c in group.criteria if c.when.test(facts, scored_at)]
        else:
            fired, moments = _engagement(group, behaviour, scored_at)
            changes.extend(moments)
        reasons.extend(fired)
        totals[group.kind] += _capped(sum(r.points for r in fired), group.cap)
    for event_type, days in model.windows:
        changes.extend(e.occurred_at + timedelta(days=days) for e in behaviour if e.type == event_type)
    fit, engagement = totals["fit"], totals["engagement"]
    total = max(0, min(model.total_cap, fit + engagement))
    facts["score"] = {"fit": fit, "engagement": engagement, "total": total}
    decided = {}  # tag -> added?; a later rule overrides an earlier one on the same tag
    for rule in model.tag_rules:
        if rule.when.test(facts, scored_at):
            decided[rule.tag] = rule.add
    future = [moment for moment in changes if moment > scored_at]
    return Score(lead_id=lead["lead_id"], fit=fit, engagement=engagement, total=total,
                 qualified=total >= model.threshold, threshold=model.threshold, model_version=model.version,
                 reasons=reasons, scored_at=scored_at, grade=_grade(model, fit, engagement),
                 tags_added=sorted(t for t, add in decided.items() if add),
                 tags_removed=sorted(t for t, add in decided.items() if not add),
                 next_change_at=min(future) if future else None)


def effective_tags(lead: dict, score: Score) -> list:
    """The lead's own tags with the model's tag rules applied."""
    return sorted((set(lead.get("tags") or ()) | set(score.tags_added)) - set(score.tags_removed))


def with_win_probability(score: Score, probability: float | None, model_version: str) -> Score:
    return replace(score, win_probability=probability, win_model_version=model_version if probability is not None
                   else "")


def newly_qualified(previous: Score | None, current: Score) -> bool:
    """lead_qualified is emitted once per crossing of the threshold, not on every rescore."""
    return current.qualified and not (previous and previous.qualified)


def newly_disqualified(previous: Score | None, current: Score, model: ScoringModel) -> bool:
    return model.emit_disqualified and bool(previous and previous.qualified) and not current.qualified


def remember(behaviour: list, event: BehaviourEvent) -> list | None:
    """The behaviour list with ``event`` added (newest kept, bounded); None when it was already there."""
    if any(e.activity_id == event.activity_id for e in behaviour):
        return None
    kept = sorted([*behaviour, event], key=lambda e: e.occurred_at, reverse=True)
    return kept[:MAX_BEHAVIOUR_KEPT]


# ---- the built-in model: what a company gets before it writes its own -----------------------------------

DECISION_MAKER_PATTERN = (r"\b(ceo|cto|cfo|coo|cio|cmo|chief|founder|co-founder|owner|president|vp|vice president"
                          r"|director|head)\b|总裁|总经理|总监|董事|创始人|负责人")

BUILTIN_DEFINITION = {
    "description": "Leadflow's starting model: B2B fit plus web and email engagement that fades over months.",
    "threshold": 60,
    "total_cap": 100,
    "groups": [
        {"id": "fit", "kind": "fit", "criteria": [
            {"id": "decision_maker_title", "points": 25, "description": "title matches a decision-maker pattern",
             "when": {"field": "title", "matches": DECISION_MAKER_PATTERN}},
            {"id": "company_size_50_plus", "points": 15, "description": "company has 50 to 499 employees",
             "when": {"field": "company_size", "between": [50, 499]}},
            {"id": "company_size_500_plus", "points": 25, "description": "company has 500 or more employees",
             "when": {"field": "company_size", "gte": 500}},
            {"id": "target_industry", "points": 10, "description": "industry is one we sell to",
             "when": {"field": "industry", "in": ["software", "saas", "technology", "manufacturing", "finance",
                                                  "healthcare", "education", "logistics", "retail"]}},
            {"id": "business_email", "points": 15, "description": "email is on a company domain",
             "when": {"field": "company_domain", "present": True}},
            {"id": "reachable_by_phone", "points": 10, "description": "phone number given",
             "when": {"field": "phone_e164", "present": True}},
            {"id": "marketing_consent", "points": 5, "description": "agreed to marketing contact",
             "when": {"field": "marketing_consent", "equals": True}},
            {"id": "student_email", "points": -20, "description": "student email address",
             "when": {"field": "email", "matches": r"(\.edu(\.[a-z]{2})?$|\bstudent)"}},
        ]},
        {"id": "intent", "kind": "fit", "criteria": [
            {"id": "high_intent_source", "points": 20, "description": "came from a high-intent channel",
             "when": {"field": "source", "in": ["demo_request", "referral", "webinar", "event", "partner",
                                                "contact_sales"]}},
        ]},
        {"id": "engagement", "kind": "engagement", "cap": 50, "decay": {"percent": 25, "every_days": 30},
         "criteria": [
             {"id": "demo_request", "event": "demo_request", "points": 15, "max_count": 2,
              "description": "asked for a demo"},
             {"id": "trial_signup", "event": "trial_signup", "points": 15, "max_count": 1,
              "description": "signed up for a trial"},
             {"id": "pricing_page_view", "event": "pricing_page_view", "points": 3, "max_count": 5,
              "description": "viewed the pricing page"},
             {"id": "webinar_attended", "event": "webinar_attended", "points": 8, "max_count": 3,
              "description": "attended a webinar"},
             {"id": "content_download", "event": "content_download", "points": 5, "max_count": 4,
              "description": "downloaded content"},
             {"id": "form_submission", "event": "form_submission", "points": 5, "max_count": 3,
              "description": "submitted a form"},
             {"id": "email_click", "event": "email_click", "points": 2, "max_count": 10,
              "description": "clicked a link in an email"},
             {"id": "email_open", "event": "email_open", "points": 1, "max_count": 10,
              "description": "opened an email"},
             {"id": "page_view", "event": "page_view", "points": 1, "max_count": 10, "within_days": 30,
              "description": "viewed a page (last 30 days)"},
         ]},
    ],
    "tag_rules": [
        {"id": "clear_intent", "tag": "intent:clear",
         "when": {"any": [{"event": "demo_request"}, {"event": "trial_signup"},
                          {"event": "pricing_page_view", "at_least": 3, "within_days": 14}]}},
        {"id": "price_sensitive", "tag": "price-sensitive",
         "when": {"all": [{"event": "pricing_page_view", "at_least": 3},
                          {"not": {"event": "demo_request"}}]}},
    ],
}


def builtin_model(threshold: int = 60) -> ScoringModel:
    return compile_model({**BUILTIN_DEFINITION, "threshold": threshold}, BUILTIN_VERSION)
