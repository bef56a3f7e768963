"""Conditions as data: the ``when`` of scoring rules and routing rules, written once.

An admin writes ``{field: industry, in: [software, saas]}``, ``{event: demo_request, at_least: 1}`` or
combines them with ``all``/``any``/``not``. ``ConditionCompiler`` checks a whole document, naming the
path of every mistake, and turns each condition into a predicate over facts:
``{"lead": snapshot, "score": {...}, "behaviour": [events with .type and .occurred_at]}``.
"""
import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from services.common.errors import FieldViolation
from services.common.events import ACTIVITY_TYPES

MAX_PATTERN = 300
MAX_DEPTH = 6
CUSTOM_PREFIX = "custom."
# Fields of capture's lead snapshot a condition may test, plus the derived email_domain.
LEAD_FIELDS = ("email", "email_domain", "phone_e164", "first_name", "last_name", "company", "company_domain",
               "title", "country", "region", "city", "industry", "company_size", "source", "medium", "campaign",
               "tags", "marketing_consent", "external_id", "needs_review")
FIELD_OPERATORS = ("in", "not_in", "equals", "matches", "contains", "ends_with", "gte", "lte", "between",
                   "present")
# A pattern that can take exponential time on a crafted title is refused up front.
_NESTED_QUANTIFIER = re.compile(r"\([^)]*[+*][^)]*\)[+*{]")


@dataclass(frozen=True)
class Condition:
    """A compiled condition: ``test(facts, now)``; ``windows`` are the (event type, days) pairs it
    counts over, which make it change with time alone."""

    test: Callable
    windows: tuple = ()


class ConditionCompiler:
    """Walks a document once, collecting every violation with its path. ``fields`` are the facts a
    condition may name (besides ``custom.<key>``)."""

    def __init__(self, fields: tuple, events: bool = True):
        self.fields = fields
        self.events = events
        self.violations = []
        self.windows = set()

    def fail(self, path: str, description: str):
        self.violations.append(FieldViolation(path, description))

    def integer(self, value, path: str, low: int, high: int, required: bool = True):
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            self.fail(path, "must be a whole number" if value is not None else "is required")
            return None
        if not low <= value <= high:
            self.fail(path, f"must be between {low} and {high} (got {int(value)})")
            return None
        return int(value)

    def identifier(self, value, path: str):
        if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", value or ""):
            self.fail(path, "must be 1-64 lower-case letters, digits, '_' or '-', starting with a letter")
            return None
        return value

    def known_keys(self, mapping: dict, allowed: tuple, path: str):
        for key in mapping:
            if key not in allowed:
                self.fail(f"{path}.{key}" if path else str(key), f"unknown key; expected one of {', '.join(allowed)}")

    def condition(self, spec, path: str, fields: tuple | None = None, depth: int = 0) -> Condition | None:
        if not isinstance(spec, dict) or not spec:
            self.fail(path, "must be a condition: {field: ..., <operator>: ...}, {event: ...}, all, any or not")
            return None
        if depth > MAX_DEPTH:
            self.fail(path, f"conditions nest at most {MAX_DEPTH} deep")
            return None
        if "all" in spec or "any" in spec:
            key = "all" if "all" in spec else "any"
            self.known_keys(spec, (key,), path)
            parts = spec[key]
            if not isinstance(parts, list) or not parts:
                self.fail(f"{path}.{key}", "must be a non-empty list of conditions")
                return None
            compiled = [self.condition(p, f"{path}.{key}[{i}]", fields, depth + 1) for i, p in enumerate(parts)]
            if None in compiled:
                return None
            combine = all if key == "all" else any
            return Condition(lambda facts, now: combine(c.test(facts, now) for c in compiled),
                             tuple(w for c in compiled for w in c.windows))
        if "not" in spec:
            self.known_keys(spec, ("not",), path)
            inner = self.condition(spec["not"], f"{path}.not", fields, depth + 1)
            return inner and Condition(lambda facts, now: not inner.test(facts, now), inner.windows)
        if "event" in spec:
            if not self.events:
                self.fail(f"{path}.event", "behaviour is not counted here; test lead fields and the score")
                return None
            return self._event_condition(spec, path)
        if "field" in spec:
            return self._field_condition(spec, path, fields or self.fields)
        self.fail(path, "must name a field, an event, or combine conditions with all/any/not")
        return None

    def _event_condition(self, spec: dict, path: str) -> Condition | None:
        self.known_keys(spec, ("event", "at_least", "within_days"), path)
        event = spec["event"]
        if event not in ACTIVITY_TYPES:
            self.fail(f"{path}.event", f"unknown event {event!r}; expected one of {', '.join(ACTIVITY_TYPES)}")
            return None
        at_least = self.integer(spec.get("at_least", 1), f"{path}.at_least", 1, 10_000)
        within = self.integer(spec.get("within_days"), f"{path}.within_days", 1, 3650, required=False)
        if at_least is None or ("within_days" in spec and within is None):
            return None
        windows = ((event, within),) if within else ()

        def test(facts, now):
            since = now - timedelta(days=within) if within else None
            return sum(1 for e in facts["behaviour"] if e.type == event and (since is None or e.occurred_at > since)) \
                >= at_least
        return Condition(test, windows)

    def _field_condition(self, spec: dict, path: str, allowed: tuple) -> Condition | None:
        name = spec["field"]
        if not isinstance(name, str) or not (name in allowed or (
                name.startswith(CUSTOM_PREFIX) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,63}",
                                                                name[len(CUSTOM_PREFIX):]))):
            self.fail(f"{path}.field", f"unknown field {name!r}; expected one of {', '.join(allowed)} "
                                       "or custom.<key>")
            return None
        operators = [key for key in spec if key != "field"]
        if len(operators) != 1 or operators[0] not in FIELD_OPERATORS:
            self.fail(path, f"needs exactly one operator besides field: one of {', '.join(FIELD_OPERATORS)}")
            return None
        operator, operand = operators[0], spec[operators[0]]
        where = f"{path}.{operator}"
        predicate = self._predicate(operator, operand, where)
        if predicate is None:
            return None
        return Condition(lambda facts, now: predicate(field_value(facts, name)))

    def _predicate(self, operator: str, operand, where: str):
        if operator in ("in", "not_in", "ends_with"):
            if not isinstance(operand, list) or not operand or \
                    not all(isinstance(v, (str, int, float)) for v in operand):
                self.fail(where, "must be a non-empty list of values")
                return None
            values = {_folded(v) for v in operand}
            if operator == "ends_with":
                suffixes = tuple(values)
                return lambda value: isinstance(value, str) and value.lower().endswith(suffixes)
            if operator == "in":
                return lambda value: any(_folded(v) in values for v in _as_list(value))
            return lambda value: not any(_folded(v) in values for v in _as_list(value))
        if operator == "equals":
            if not isinstance(operand, (str, int, float, bool)):
                self.fail(where, "must be a single value")
                return None
            target = _folded(operand)
            return lambda value: any(_folded(v) == target for v in _as_list(value))
        if operator == "contains":
            if not isinstance(operand, str) or not operand:
                self.fail(where, "must be a non-empty text")
                return None
            needle = operand.lower()
            return lambda value: any(needle in str(v).lower() for v in _as_list(value)) if isinstance(value, list) \
                else needle in str(value).lower()
        if operator == "matches":
            return self._pattern(operand, where)
        if operator in ("gte", "lte", "between"):
            bounds = operand if operator == "between" else [operand]
            if not isinstance(bounds, list) or len(bounds) != (2 if operator == "between" else 1) or not all(
                    isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds):
                self.fail(where, "must be [low, high] numbers" if operator == "between" else "must be a number")
                return None
            if operator == "between" and bounds[0] > bounds[1]:
                self.fail(where, "low must not be above high")
                return None
            low = bounds[0] if operator in ("gte", "between") else -math.inf
            high = bounds[-1] if operator in ("lte", "between") else math.inf
            return lambda value: (number := _number(value)) is not None and low <= number <= high
        if not isinstance(operand, bool):  # present
            self.fail(where, "must be true or false")
            return None
        return lambda value: _is_present(value) == operand

    def _pattern(self, operand, where: str):
        if not isinstance(operand, str) or not operand:
            self.fail(where, "must be a regular expression")
            return None
        if len(operand) > MAX_PATTERN or _NESTED_QUANTIFIER.search(operand):
            self.fail(where, f"patterns are at most {MAX_PATTERN} characters without nested repetition")
            return None
        try:
            pattern = re.compile(operand, re.IGNORECASE)
        except re.error as error:
            self.fail(where, f"is not a valid regular expression: {error}")
            return None
        return lambda value: any(pattern.search(str(v)) for v in _as_list(value))


def _folded(value) -> str:
    return str(value).strip().lower()


def _as_list(value) -> list:
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(str(value).replace(",", "").strip())
    except ValueError:
        return None


def _is_present(value) -> bool:
    return value not in (None, "", [], 0, False)


def field_value(facts: dict, name: str):
    if name.startswith(CUSTOM_PREFIX):
        return (facts["lead"].get("custom_fields") or {}).get(name[len(CUSTOM_PREFIX):], "")
    if name.startswith("score."):
        return facts["score"][name[len("score."):]]
    if name == "email_domain":
        email = facts["lead"].get("email") or ""
        return email.rpartition("@")[2].lower() if "@" in email else ""
    return facts["lead"].get(name, "")
