"""An opportunity's life after conversion, as pure functions: which field changes are valid, what
the exit criteria see, and what closing needs. The service reads, calls these, and writes back
guarded by the opportunity's version."""
from dataclasses import dataclass
from datetime import date

from services.common.errors import FailedPrecondition, Validator
from services.common.money import checked_amount, checked_currency
from services.opportunity.pipeline import LOST, WON, OpportunityFacts, Pipeline, missing_to_leave

# BANT, plus who decides and who else is bidding: the qualification facts sales records.
QUALIFICATION_KEYS = ("decision_maker", "budget", "authority", "need", "timeline", "competitor")
UPDATABLE = ("name", "amount", "currency", "close_date", "next_step", "probability_override")
MAX_TEXT = 2000


def qualification_from_verdict(verdict: dict | None) -> dict:
    """The answers sales gave when qualifying the lead, as the opportunity's qualification facts, so
    the deal's exit criteria (need, budget...) do not ask again for what the rep already recorded.
    Only a qualified verdict counts, and only answers that name a qualification fact."""
    if not verdict or verdict.get("outcome") != "qualified":
        return {}
    answers = verdict.get("answers") or {}
    return {key: value.strip()[:MAX_TEXT] for key, value in answers.items()
            if key in QUALIFICATION_KEYS and isinstance(value, str) and value.strip()}


@dataclass(frozen=True)
class Changes:
    """Checked field changes: ``fields`` to set on the document, ``qualification`` keys to set ("" clears)."""

    fields: dict
    qualification: dict


def validate_changes(mask: list, values: dict, probability_override: int, today: date) -> Changes:
    check = Validator()
    fields, qualification = {}, {}
    check.check(bool(mask), "update_mask", "names the fields to change")
    for index, name in enumerate(mask):
        if name.startswith("qualification."):
            key = name.removeprefix("qualification.")
            if check.check(key in QUALIFICATION_KEYS, f"update_mask[{index}]",
                           f"unknown qualification key; expected one of {', '.join(QUALIFICATION_KEYS)}"):
                text = values.get("qualification", {}).get(key, "").strip()
                if check.max_length(text, MAX_TEXT, f"opportunity.qualification[{key}]"):
                    qualification[key] = text
            continue
        if not check.check(name in UPDATABLE, f"update_mask[{index}]",
                           f"cannot be changed here; expected one of {', '.join(UPDATABLE)} or qualification.<key>"):
            continue
        if name == "probability_override":
            if check.check(-1 <= probability_override <= 100, "probability_override",
                           "must be a percent 0-100, or -1 for the stage's default"):
                fields["probability_override"] = None if probability_override == -1 else probability_override
            continue
        text = str(values.get(name, "")).strip()
        where = f"opportunity.{name}"
        if name == "name":
            if check.required(text, where):
                check.max_length(text, 200, where)
        elif name == "amount" and text:
            amount = checked_amount(check, text, where)
            text = str(amount) if amount is not None else text
        elif name == "currency" and text:
            text = checked_currency(check, text, where)
        elif name == "close_date" and text:
            try:
                check.check(date.fromisoformat(text) >= today, where, "must not be in the past")
            except ValueError:
                check.check(False, where, "must be a date, YYYY-MM-DD")
        elif name == "next_step":
            check.max_length(text, MAX_TEXT, where)
        fields[name] = text
    check.raise_if_invalid()
    return Changes(fields, qualification)


def facts_of(document, activity_kinds, attachments: int) -> OpportunityFacts:
    """What exit criteria see: filled fields (qualification facts included) and what was logged."""
    filled = {name for name in ("amount", "currency", "close_date", "next_step") if getattr(document, name)}
    filled |= {key for key, value in (document.qualification or {}).items() if value}
    if document.probability_override is not None:
        filled.add("probability_override")
    return OpportunityFacts(frozenset(filled), frozenset(activity_kinds), attachments)


def ensure_open(document) -> None:
    if document.status != "open":
        raise FailedPrecondition(f"opportunity {document.id} is closed {document.status}; reopen it first")


def ensure_version(document, expected_version: int) -> None:
    if expected_version and document.version != expected_version:
        raise FailedPrecondition(f"opportunity {document.id} changed meanwhile (now version {document.version}, "
                                 f"you read {expected_version}); read it again")


def blocked_move(pipeline: Pipeline, document, target: str, facts: OpportunityFacts) -> None:
    """FAILED_PRECONDITION listing exactly what is missing, or nothing when the move may happen."""
    missing = missing_to_leave(pipeline, document.stage_id, target, facts)
    if missing:
        raise FailedPrecondition(f"cannot move to {target}: " + "; ".join(missing))


def validate_close(pipeline: Pipeline, won: bool, lost_reason: str, note: str) -> str:
    """The stage a close moves to, once its reason and note are checked."""
    check = Validator()
    if not won:
        check.check(lost_reason in pipeline.lost_reasons, "lost_reason",
                    f"is required when lost: one of {', '.join(pipeline.lost_reasons)}")
    check.max_length(note, MAX_TEXT, "note")
    check.raise_if_invalid()
    return WON if won else LOST


def probability_and_forecast(status: str, stage, probability_override) -> tuple[int, str]:
    """Win probability (percent) and forecast category where the opportunity stands: the stage's,
    or the owner's override while open; 100 / 0 and "closed" once won / lost."""
    if status != "open":
        return (100 if status == "won" else 0), "closed"
    if probability_override is not None:
        return probability_override, stage.forecast if stage else ""
    return (stage.probability, stage.forecast) if stage else (0, "")


def place(document, pipeline: Pipeline) -> None:
    """Keep the stored probability and forecast category current, for the events reporting reads."""
    document.probability, document.forecast_category = probability_and_forecast(
        document.status, pipeline.stage(document.stage_id), document.probability_override)
