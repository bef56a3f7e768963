"""The routing policy as data: ordered rules, a fallback team, the response deadline and escalation.

An admin writes it as YAML (``leadflow config apply``) or JSON (``PutRoutingPolicy``)::

    rules:
      - id: enterprise-de
        when: {all: [{field: country, in: [DE, AT, CH]}, {field: score.total, gte: 80}]}
        team: dach-ae                      # or reps: [li.na, max.mueller]; neither: every rep
        strategy: sticky                   # weighted_round_robin (default), least_loaded, sticky
        then: least_loaded                 # sticky's choice when the account's owner cannot take it
        match_rep: [territory, industry]   # only reps whose lists cover the lead (empty list: any)
        skills: [german]                   # only reps with every one of these skills
        working_hours: true                # skip reps outside their working hours
        sla_minutes: 60                    # this rule's first-response deadline, in business minutes
    fallback: {team: sales-desk}           # tried when no rule finds a rep; then the fallback queue
    sla: {first_response_minutes: 120, warning_percent: 75, holidays: ["2026-12-25"]}
    escalation: {action: reassign, max_hops: 2}   # or notify_manager

``compile_policy`` names every mistake by path (``rules[2].strategy``) and rejects the whole document.
"""
from dataclasses import dataclass
from datetime import date

from services.common.conditions import LEAD_FIELDS, Condition, ConditionCompiler
from services.common.errors import FieldViolation, InvalidArgument
from services.routing.domain import REP_ID

BUILTIN_VERSION = "builtin"
WEIGHTED_ROUND_ROBIN = "weighted_round_robin"
LEAST_LOADED = "least_loaded"
STICKY = "sticky"
STRATEGIES = (WEIGHTED_ROUND_ROBIN, LEAST_LOADED, STICKY)
REP_MATCHES = ("territory", "industry", "company_size", "language")
REASSIGN = "reassign"
NOTIFY_MANAGER = "notify_manager"
ESCALATIONS = (REASSIGN, NOTIFY_MANAGER)
SCORE_FIELDS = ("score.fit", "score.engagement", "score.total", "score.grade")
MAX_RULES = 200
MAX_SLA_MINUTES = 60 * 24 * 30
MAX_HOPS = 10


@dataclass(frozen=True)
class Rule:
    rule_id: str
    description: str
    when: Condition | None  # None matches every lead
    team: str  # "" with no reps: every rep
    reps: tuple
    strategy: str
    then: str  # sticky's fallback strategy
    match_rep: tuple
    skills: tuple
    working_hours: bool
    sla_minutes: int | None

    def matches(self, lead: dict, score: dict) -> bool:
        return self.when is None or self.when.test({"lead": lead, "score": score, "behaviour": ()}, None)

    @property
    def pool(self) -> str:
        """The name shared state (rotation) is kept under: rules drawing on the same reps share turns."""
        if self.reps:
            return "reps:" + ",".join(sorted(self.reps))
        return f"team:{self.team}" if self.team else "all"


@dataclass(frozen=True)
class RoutingPolicy:
    version: str
    rules: tuple
    fallback_team: str
    first_response_minutes: int
    warning_percent: int
    holidays: frozenset
    escalation: str
    max_hops: int

    def fallback_rule(self) -> Rule | None:
        if not self.fallback_team:
            return None
        return Rule("fallback", "the policy's fallback team", None, self.fallback_team, (), WEIGHTED_ROUND_ROBIN,
                    WEIGHTED_ROUND_ROBIN, (), (), False, None)

    def sla_minutes(self, rule: Rule | None) -> int:
        return rule.sla_minutes if rule is not None and rule.sla_minutes else self.first_response_minutes


def builtin_definition(first_response_minutes: int) -> dict:
    """What runs before an admin stores a policy: every rep takes turns, by weight."""
    return {"rules": [{"id": "everyone", "description": "every active rep, in weighted turns",
                       "strategy": WEIGHTED_ROUND_ROBIN}],
            "sla": {"first_response_minutes": first_response_minutes, "warning_percent": 75},
            "escalation": {"action": REASSIGN, "max_hops": 2}}


def compile_policy(definition: dict, version: str) -> RoutingPolicy:
    c = ConditionCompiler(LEAD_FIELDS + SCORE_FIELDS, events=False)
    if not isinstance(definition, dict):
        raise InvalidArgument([FieldViolation("policy", "must be a mapping with rules, fallback, sla and escalation")])
    c.known_keys(definition, ("rules", "fallback", "sla", "escalation"), "")
    rules = _rules(c, definition.get("rules"))
    fallback = _mapping(c, definition.get("fallback", {}), "fallback", ("team",))
    fallback_team = _team(c, fallback.get("team", ""), "fallback.team")
    sla = _mapping(c, definition.get("sla", {}), "sla", ("first_response_minutes", "warning_percent", "holidays"))
    minutes = c.integer(sla.get("first_response_minutes", 120), "sla.first_response_minutes", 1, MAX_SLA_MINUTES)
    warning = c.integer(sla.get("warning_percent", 75), "sla.warning_percent", 1, 99)
    holidays = _holidays(c, sla.get("holidays", []), "sla.holidays")
    escalation = _mapping(c, definition.get("escalation", {}), "escalation", ("action", "max_hops"))
    action = escalation.get("action", REASSIGN)
    if action not in ESCALATIONS:
        c.fail("escalation.action", f"must be one of {', '.join(ESCALATIONS)}")
    hops = c.integer(escalation.get("max_hops", 2), "escalation.max_hops", 0, MAX_HOPS)
    if c.violations:
        raise InvalidArgument(c.violations)
    return RoutingPolicy(version, tuple(rules), fallback_team, minutes, warning, holidays, action, hops)


def _mapping(c: ConditionCompiler, value, path: str, keys: tuple) -> dict:
    if not isinstance(value, dict):
        c.fail(path, f"must be a mapping with {', '.join(keys)}")
        return {}
    c.known_keys(value, keys, path)
    return value


def _team(c: ConditionCompiler, value, path: str) -> str:
    if value == "":
        return ""
    if not isinstance(value, str) or not REP_ID.match(value):
        c.fail(path, "must be a team id: 1-64 letters, digits, '.', '_' or '-'")
        return ""
    return value


def _strings(c: ConditionCompiler, value, path: str, allowed: tuple | None = None, pattern=None) -> tuple:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        c.fail(path, "must be a list of names")
        return ()
    for index, item in enumerate(value):
        if allowed is not None and item not in allowed:
            c.fail(f"{path}[{index}]", f"must be one of {', '.join(allowed)}")
        if pattern is not None and not pattern.match(item):
            c.fail(f"{path}[{index}]", "1-64 letters, digits, '.', '_' or '-'")
    return tuple(dict.fromkeys(v.strip() if pattern is not None else v.strip().lower() for v in value))


def _holidays(c: ConditionCompiler, value, path: str) -> frozenset:
    if not isinstance(value, list):
        c.fail(path, "must be a list of dates, YYYY-MM-DD")
        return frozenset()
    days = set()
    for index, text in enumerate(value):
        try:
            days.add(date.fromisoformat(str(text)))
        except ValueError:
            c.fail(f"{path}[{index}]", "must be a date, YYYY-MM-DD")
    return frozenset(days)


def _rules(c: ConditionCompiler, spec) -> list:
    if not isinstance(spec, list) or not spec:
        c.fail("rules", "must be a non-empty list of rules")
        return []
    if len(spec) > MAX_RULES:
        c.fail("rules", f"at most {MAX_RULES} rules")
    rules, seen = [], set()
    keys = ("id", "description", "when", "team", "reps", "strategy", "then", "match_rep", "skills", "working_hours",
            "sla_minutes")
    for index, raw in enumerate(spec):
        path = f"rules[{index}]"
        if not isinstance(raw, dict):
            c.fail(path, "must be a mapping")
            continue
        c.known_keys(raw, keys, path)
        rule_id = c.identifier(raw.get("id"), f"{path}.id")
        if rule_id in seen:
            c.fail(f"{path}.id", f"duplicate rule id {rule_id!r}")
        seen.add(rule_id)
        when = c.condition(raw["when"], f"{path}.when") if "when" in raw else None
        team = _team(c, raw.get("team", ""), f"{path}.team")
        reps = _strings(c, raw.get("reps", []), f"{path}.reps", pattern=REP_ID)
        if team and reps:
            c.fail(f"{path}.reps", "choose a team or a list of reps, not both")
        strategy = raw.get("strategy", WEIGHTED_ROUND_ROBIN)
        if strategy not in STRATEGIES:
            c.fail(f"{path}.strategy", f"must be one of {', '.join(STRATEGIES)}")
        then = raw.get("then", WEIGHTED_ROUND_ROBIN)
        if then not in (WEIGHTED_ROUND_ROBIN, LEAST_LOADED):
            c.fail(f"{path}.then", f"must be {WEIGHTED_ROUND_ROBIN} or {LEAST_LOADED}")
        working_hours = raw.get("working_hours", False)
        if not isinstance(working_hours, bool):
            c.fail(f"{path}.working_hours", "must be true or false")
        sla_minutes = c.integer(raw.get("sla_minutes"), f"{path}.sla_minutes", 1, MAX_SLA_MINUTES, required=False)
        description = raw.get("description", "")
        if not isinstance(description, str) or len(description) > 300:
            c.fail(f"{path}.description", "must be a text of at most 300 characters")
            description = ""
        rules.append(Rule(rule_id or "", description, when, team, reps, strategy, then,
                          _strings(c, raw.get("match_rep", []), f"{path}.match_rep", allowed=REP_MATCHES),
                          _strings(c, raw.get("skills", []), f"{path}.skills"), working_hours is True, sla_minutes))
    return rules
