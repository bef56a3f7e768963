"""Sales pipelines as data, and what it takes to leave a stage.

A company keeps several pipelines (new business, renewal, partner); each is a versioned document an
admin writes::

    id: new-business
    name: New business
    allow_skip: false            # moving forward past a stage needs that stage's exit criteria too
    allow_backward: true
    stages:
      - {id: discovery, name: Discovery, probability: 10, forecast: pipeline,
         exit: {activities: [meeting], fields: [amount, close_date]}}
      - {id: proposal, name: Proposal, probability: 50, forecast: best_case,
         exit: {attachments: 1, fields: [decision_maker]}}
      - {id: negotiation, name: Negotiation, probability: 80, forecast: commit}
    lost_reasons: [price, timing, competitor, no_decision]

Closed won and closed lost are not stages an admin lists: every pipeline ends in them. Pure: the
opportunity service compiles a stored document with ``compile_pipeline`` and asks ``missing_to_leave``
what blocks a move, to answer FAILED_PRECONDITION with exactly what is missing.
"""
import re
from dataclasses import dataclass

from services.common.errors import FieldViolation, InvalidArgument

FORECAST_CATEGORIES = ("pipeline", "best_case", "commit")
ACTIVITY_KINDS = ("call", "email", "meeting", "note")
# Opportunity fields an exit criterion may require to be filled.
OPPORTUNITY_FIELDS = ("amount", "currency", "close_date", "next_step", "decision_maker", "budget", "authority",
                      "need", "timeline", "probability_override", "competitor")
WON, LOST = "closed_won", "closed_lost"
MAX_STAGES = 30
ID = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class ExitCriteria:
    fields: tuple = ()  # opportunity fields that must be filled
    activities: tuple = ()  # kinds of activity that must have been logged on the opportunity
    attachments: int = 0  # files that must be attached

    @property
    def empty(self) -> bool:
        return not (self.fields or self.activities or self.attachments)


@dataclass(frozen=True)
class Stage:
    stage_id: str
    name: str
    probability: int  # percent, the default win probability while here
    forecast: str  # forecast category
    exit: ExitCriteria


@dataclass(frozen=True)
class Pipeline:
    pipeline_id: str
    name: str
    stages: tuple
    allow_skip: bool
    allow_backward: bool
    lost_reasons: tuple

    def index(self, stage_id: str) -> int:
        """Position of a stage; the closed outcomes come after every open stage."""
        ids = [s.stage_id for s in self.stages]
        if stage_id in ids:
            return ids.index(stage_id)
        if stage_id in (WON, LOST):
            return len(ids)
        raise KeyError(stage_id)

    def stage(self, stage_id: str) -> Stage | None:
        return next((s for s in self.stages if s.stage_id == stage_id), None)


@dataclass(frozen=True)
class OpportunityFacts:
    """What exit criteria are checked against."""

    filled: frozenset  # names of filled opportunity fields
    activities: frozenset  # kinds of activity logged on the opportunity
    attachments: int


def compile_pipeline(definition: dict) -> Pipeline:
    """Check a pipeline document, naming every mistake by path (``stages[1].exit.activities[0]``)."""
    violations = []

    def fail(path, description):
        violations.append(FieldViolation(path, description))

    if not isinstance(definition, dict):
        raise InvalidArgument([FieldViolation("pipeline", "must be a mapping with id, name and stages")])
    for key in definition:
        if key not in ("id", "name", "stages", "allow_skip", "allow_backward", "lost_reasons"):
            fail(str(key), "unknown key; expected id, name, stages, allow_skip, allow_backward, lost_reasons")
    pipeline_id = definition.get("id")
    if not isinstance(pipeline_id, str) or not ID.match(pipeline_id):
        fail("id", "must be 1-64 lower-case letters, digits, '_' or '-', starting with a letter")
    name = definition.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        fail("name", "is required: at most 200 characters")
    flags = {}
    for flag, default in (("allow_skip", False), ("allow_backward", True)):
        flags[flag] = definition.get(flag, default)
        if not isinstance(flags[flag], bool):
            fail(flag, "must be true or false")
    stages = _stages(definition.get("stages"), fail)
    lost_reasons = definition.get("lost_reasons", ["price", "timing", "competitor", "no_decision", "other"])
    if not isinstance(lost_reasons, list) or not lost_reasons or \
            not all(isinstance(r, str) and ID.match(r) for r in lost_reasons):
        fail("lost_reasons", "must be a non-empty list of ids (lower-case letters, digits, '_' or '-')")
        lost_reasons = []
    if violations:
        raise InvalidArgument(violations)
    return Pipeline(pipeline_id, name.strip(), tuple(stages), flags["allow_skip"], flags["allow_backward"],
                    tuple(dict.fromkeys(lost_reasons)))


def _stages(spec, fail) -> list:
    if not isinstance(spec, list) or not spec:
        fail("stages", "must be a non-empty list of stages")
        return []
    if len(spec) > MAX_STAGES:
        fail("stages", f"at most {MAX_STAGES} stages")
    stages, seen, previous_probability = [], set(), -1
    for index, raw in enumerate(spec):
        path = f"stages[{index}]"
        if not isinstance(raw, dict):
            fail(path, "must be a mapping")
            continue
        for key in raw:
            if key not in ("id", "name", "probability", "forecast", "exit"):
                fail(f"{path}.{key}", "unknown key; expected id, name, probability, forecast, exit")
        stage_id = raw.get("id")
        if not isinstance(stage_id, str) or not ID.match(stage_id) or stage_id in (WON, LOST):
            fail(f"{path}.id", "must be an id (lower-case letters, digits, '_' or '-'), not closed_won/closed_lost")
        elif stage_id in seen:
            fail(f"{path}.id", f"duplicate stage {stage_id!r}")
        seen.add(stage_id)
        probability = raw.get("probability")
        if isinstance(probability, bool) or not isinstance(probability, (int, float)) or \
                int(probability) != probability or not 0 <= probability <= 100:
            fail(f"{path}.probability", "must be a whole percent, 0-100")
            probability = 0
        elif probability < previous_probability:
            fail(f"{path}.probability", f"must not fall below the previous stage's {previous_probability}")
        previous_probability = max(previous_probability, int(probability))
        forecast = raw.get("forecast", "pipeline")
        if forecast not in FORECAST_CATEGORIES:
            fail(f"{path}.forecast", f"must be one of {', '.join(FORECAST_CATEGORIES)}")
        name = raw.get("name", stage_id)
        if not isinstance(name, str) or not name.strip():
            fail(f"{path}.name", "must be a non-empty text")
            name = str(stage_id)
        stages.append(Stage(str(stage_id), name.strip(), int(probability), forecast,
                            _exit(raw.get("exit", {}), f"{path}.exit", fail)))
    return stages


def _exit(spec, path: str, fail) -> ExitCriteria:
    if not isinstance(spec, dict):
        fail(path, "must be a mapping with fields, activities and attachments")
        return ExitCriteria()
    for key in spec:
        if key not in ("fields", "activities", "attachments"):
            fail(f"{path}.{key}", "unknown key; expected fields, activities, attachments")
    fields = spec.get("fields", [])
    activities = spec.get("activities", [])
    for name, values, allowed in (("fields", fields, OPPORTUNITY_FIELDS), ("activities", activities, ACTIVITY_KINDS)):
        if not isinstance(values, list):
            fail(f"{path}.{name}", "must be a list")
            continue
        for index, value in enumerate(values):
            if value not in allowed:
                fail(f"{path}.{name}[{index}]", f"must be one of {', '.join(allowed)}")
    attachments = spec.get("attachments", 0)
    if isinstance(attachments, bool) or not isinstance(attachments, (int, float)) or \
            int(attachments) != attachments or not 0 <= attachments <= 20:
        fail(f"{path}.attachments", "must be a whole number 0-20")
        attachments = 0
    return ExitCriteria(tuple(f for f in fields if f in OPPORTUNITY_FIELDS) if isinstance(fields, list) else (),
                        tuple(a for a in activities if a in ACTIVITY_KINDS) if isinstance(activities, list) else (),
                        int(attachments))


def _unmet(stage: Stage, facts: OpportunityFacts) -> list[str]:
    missing = [f"{stage.stage_id}: field {name} is empty" for name in stage.exit.fields if name not in facts.filled]
    missing += [f"{stage.stage_id}: no {kind} logged" for kind in stage.exit.activities
                if kind not in facts.activities]
    if facts.attachments < stage.exit.attachments:
        missing.append(f"{stage.stage_id}: {stage.exit.attachments - facts.attachments} more attachment(s) needed")
    return missing


def missing_to_leave(pipeline: Pipeline, current: str, target: str, facts: OpportunityFacts) -> list[str]:
    """What blocks moving from ``current`` to ``target``, each item in words a rep acts on; [] when
    the move may happen. Moving forward needs the exit criteria of the stage left, and of every stage
    skipped (skipping itself needs ``allow_skip``); moving backward needs ``allow_backward`` and no
    criteria. Closing is never skipping: lost is always allowed from an open stage, won needs the
    exit criteria of the stage it closes from."""
    if current == target:
        return [f"already in {target}"]
    if current in (WON, LOST):
        return [f"the opportunity is {current.replace('_', ' ')}; reopen it first"]
    start, end = pipeline.index(current), pipeline.index(target)
    if target == LOST:
        return []
    if target == WON:
        return _unmet(pipeline.stages[start], facts)
    if end < start:
        return [] if pipeline.allow_backward else [f"this pipeline does not move back from {current} to {target}"]
    skipped = pipeline.stages[start + 1:end]
    blocked = []
    if skipped and not pipeline.allow_skip:
        blocked.append(f"this pipeline does not skip stages: move through {', '.join(s.stage_id for s in skipped)}")
    for stage in pipeline.stages[start:end]:
        blocked.extend(_unmet(stage, facts))
    return blocked


BUILTIN_NEW_BUSINESS = {
    "id": "new-business", "name": "New business", "allow_skip": False, "allow_backward": True,
    "stages": [
        {"id": "qualification", "name": "Qualification", "probability": 10, "forecast": "pipeline",
         "exit": {"fields": ["need", "budget"], "activities": ["call"]}},
        {"id": "discovery", "name": "Discovery", "probability": 25, "forecast": "pipeline",
         "exit": {"fields": ["decision_maker", "amount", "close_date"], "activities": ["meeting"]}},
        {"id": "proposal", "name": "Proposal", "probability": 50, "forecast": "best_case",
         "exit": {"attachments": 1}},
        {"id": "negotiation", "name": "Negotiation", "probability": 80, "forecast": "commit"},
    ],
    "lost_reasons": ["price", "timing", "competitor", "no_decision", "no_budget", "other"],
}
