"""The events on Leadflow's event stream, described for the systems that consume them (GetEventTypes).

Pure data. Each event is a JSON object: the envelope (``ENVELOPE_KEYS``), its subject ids, and the
payload fields listed here. The event builders live in each service's ``events.py``; the
integration and end-to-end tests check that every event delivered on the stream carries exactly
the keys declared here, so the catalogue cannot drift from what is sent.
"""
from dataclasses import dataclass, field

from services.common.events import ENVELOPE_KEYS


@dataclass(frozen=True)
class EventTypeSpec:
    name: str
    sources: tuple[str, ...]
    description: str
    subjects: tuple[str, ...]
    fields: dict[str, str] = field(default_factory=dict)
    optional_subjects: tuple[str, ...] = ()  # subjects an event of this type carries only sometimes
    optional_fields: tuple[str, ...] = ()  # fields only some events of this type carry

    def keys(self) -> set[str]:
        """Every key an event of this type may carry."""
        return {*ENVELOPE_KEYS, *self.subjects, *self.optional_subjects, *self.fields}

    def required_keys(self) -> set[str]:
        return {*ENVELOPE_KEYS, *self.subjects, *(name for name in self.fields if name not in self.optional_fields)}


LEAD = {"lead": "the lead as capture holds it: contact details (email, phone_e164, names, company, company_domain, "
                "title), place (country, region, city), industry, company_size, attribution (source, medium, "
                "campaign), custom_fields, tags, marketing_consent, external_id, needs_review, possible_duplicate_of"}
SCORE = {"score": "the score: fit, engagement, total, qualified, grade, model_version, scored_at, win_probability, "
                  "win_model_version, tags_added, tags_removed, reasons [{rule_id, points}]"}
OPPORTUNITY = {
    "owner_id": "the opportunity's owner", "team": "the owner's team", "manager_id": "the team's manager",
    "office": "the owner's office", "account_id": "the account (company) it is with",
    "account_name": "the account's name", "product": "the product or line it is for",
    "pipeline_id": "its pipeline", "stage_id": "its stage now", "status": "open, won or lost",
    "amount": "its value as a decimal string, or null", "currency": "ISO 4217 currency of the amount",
    "close_date": "expected or actual close date (YYYY-MM-DD)", "probability": "the stage's or the rep's probability",
    "forecast_category": "pipeline, best_case, commit, closed or omitted", "engaged_at": "when work on it began",
    "closed_at": "when it was won or lost (empty while open)", "lost_reason": "why it was lost",
    "version": "one more per change: keep the highest"}
CONFIG = {"kind": "what was changed (ScoringModel, WinModel, RoutingPolicy, Pipeline, ...)",
          "version": "the version now in force", "changed_by": "who changed it"}
OWNER = {"rep_id": "the lead's owner", "team": "the owner's team"}

_SPECS = (
    EventTypeSpec("lead_captured", ("capture",), "A new lead was captured from any channel.", ("lead_id",), LEAD),
    EventTypeSpec("lead_merged", ("capture",),
                  "A capture or a whole lead was recognised as an existing lead and folded into it.", ("lead_id",),
                  {**LEAD, "match": "exact, fuzzy or manual", "match_score": "how sure the match was (0-100)",
                   "touch": "the new capture folded in (its channel, source and moment)",
                   "merged_lead_id": "the lead folded in by MergeLeads"},
                  optional_fields=("touch", "merged_lead_id")),
    EventTypeSpec("lead_unmerged", ("capture",), "A merge was undone: the lead stands on its own again.",
                  ("lead_id",), {**LEAD, "primary": "the lead it had been merged into, as it stands now"}),
    EventTypeSpec("lead_activity_recorded", ("capture",), "A lead did something: a page view, a download, a demo "
                  "request...", ("lead_id", "activity_id"),
                  {"type": "the activity's type", "url": "where it happened", "properties": "its details",
                   "activity_occurred_at": "when it happened", "visitor_id": "the anonymous visitor it was "
                   "recorded for", "stitched": "recorded earlier for the visitor, announced now it is known"}),
    EventTypeSpec("lead_scored", ("scoring",), "A lead was scored or rescored.", ("lead_id",),
                  {**SCORE, "source": "the lead's source"}),
    EventTypeSpec("lead_qualified", ("scoring",), "A lead's score crossed the qualification threshold (MQL).",
                  ("lead_id",), {**SCORE, **LEAD}),
    EventTypeSpec("lead_disqualified", ("scoring",), "A lead's score fell below the qualification threshold.",
                  ("lead_id",), {**SCORE, **LEAD, "reason": "why"}),
    EventTypeSpec("lead_assigned", ("routing",), "A lead was given to a rep, with a first-response deadline.",
                  ("lead_id", "rep_id"),
                  {"team": "the rep's team", "strategy": "how the rep was chosen",
                   "policy_version": "the routing policy's version", "rule_id": "the rule that matched",
                   "assigned_at": "when", "lead_captured_at": "when the lead was captured",
                   "source": "the lead's source", "task_id": "the first-response task",
                   "owner_version": "one more per change of owner: keep the highest"}),
    EventTypeSpec("lead_reassigned", ("routing",), "A lead changed owner (by hand, by escalation or by a rule).",
                  ("lead_id",),
                  {"rep_id": "the new owner (empty: the fallback queue)", "previous_rep_id": "the owner before",
                   "team": "the new owner's team", "kind": "manual, escalation, ...", "reason": "why", "by": "who",
                   "rule_id": "the rule that matched", "policy_version": "the routing policy's version",
                   "reassigned_at": "when", "owner_version": "one more per change of owner: keep the highest",
                   "task_id": "the new owner's task", "queued": "waiting in the fallback queue"}),
    EventTypeSpec("task_created", ("routing",), "A follow-up task with a deadline was given to a rep.",
                  ("task_id", "lead_id", "rep_id"),
                  {"kind": "the task's kind", "due_at": "its deadline", "warn_at": "when a warning goes out",
                   "created_at": "when", "escalation_hop": "how many escalations came before"}),
    EventTypeSpec("task_completed", ("routing",), "A rep completed a task.", ("task_id", "lead_id", "rep_id"),
                  {"kind": "the task's kind", "completed_at": "when", "completed_by": "who", "due_at": "its deadline",
                   "met_sla": "done by the deadline", "first_touch": "the lead's first touch",
                   "first_touch_seconds": "from the first assignment to this touch (null unless first_touch)"}),
    EventTypeSpec("sla_warning", ("routing",), "A task's deadline is near.", ("task_id", "lead_id", "rep_id"),
                  {"kind": "the task's kind", "due_at": "its deadline", "warned_at": "when"}),
    EventTypeSpec("sla_breached", ("routing",), "A task missed its deadline.", ("task_id", "lead_id", "rep_id"),
                  {"kind": "the task's kind", "due_at": "its deadline", "breached_at": "when",
                   "escalation": "what was done about it", "escalation_hop": "how many escalations came before"}),
    EventTypeSpec("lead_contacted", ("opportunity",), "A rep made the first human contact with a lead.",
                  ("lead_id", "rep_id"),
                  {"activity_id": "the activity that made contact", "activity_type": "call, email, meeting, ...",
                   "contacted_at": "when", "team": "the rep's team"}),
    EventTypeSpec("lead_converted", ("opportunity",), "A lead became an opportunity (with its account and contact).",
                  ("lead_id", "opportunity_id"),
                  {**OPPORTUNITY, "rep_id": "the lead's owner, whose desk it leaves",
                   "handed_off": "the opportunity's owner is someone else", "contact_id": "the contact made",
                   "converted_at": "when"}),
    EventTypeSpec("activity_logged", ("opportunity",), "A rep logged a call, email, meeting or note.",
                  ("lead_id", "activity_id"),
                  {"activity_type": "call, email, meeting, note, ...", "logged_by": "who",
                   "mentions": "colleagues @mentioned", "subject": "its subject", "occurred_at": "when it happened",
                   **OWNER}),
    *(EventTypeSpec(name, ("opportunity",), description, ("lead_id",),
                    {**OWNER, "reason": "why", "recycle_on": "when a recycled lead comes back",
                     "answers": "the qualification answers (BANT, ...)", "qualified_at": "when",
                     "qualified_by": "who"})
      for name, description in (("lead_sales_qualified", "Sales accepted a lead (SQL)."),
                                ("lead_sales_disqualified", "Sales turned a lead down."),
                                ("lead_recycled", "Sales sent a lead back to nurturing until a date."))),
    EventTypeSpec("opportunity_stage_changed", ("opportunity",), "An opportunity moved to another stage.",
                  ("opportunity_id",),
                  {**OPPORTUNITY, "from_stage": "the stage before", "to_stage": "the stage now",
                   "changed_at": "when", "changed_by": "who"}, optional_subjects=("lead_id",)),
    EventTypeSpec("opportunity_won", ("opportunity",), "A deal was won.", ("opportunity_id",),
                  {**OPPORTUNITY, "closed_from": "the stage it was closed from"}, optional_subjects=("lead_id",)),
    EventTypeSpec("opportunity_lost", ("opportunity",), "A deal was lost.", ("opportunity_id",),
                  {**OPPORTUNITY, "closed_from": "the stage it was closed from"}, optional_subjects=("lead_id",)),
    EventTypeSpec("opportunity_updated", ("opportunity",), "An opportunity's amount, close date, probability or "
                  "next step changed.", ("opportunity_id",),
                  {**OPPORTUNITY, "changed": "the fields that changed",
                   "probability_override": "the rep's probability, if set"}, optional_subjects=("lead_id",)),
    EventTypeSpec("opportunity_imported", ("opportunity",), "A past deal came in with a sales-history import.",
                  ("opportunity_id",),
                  {**OPPORTUNITY, "external_id": "its id in the system it came from", "imported_at": "when"},
                  optional_subjects=("lead_id",)),
    EventTypeSpec("config_changed", ("scoring", "routing", "opportunity"),
                  "A rule set changed: a scoring model, the win model, the routing policy or a pipeline.",
                  ("config_id",), CONFIG),
)

EVENT_TYPES: dict[str, EventTypeSpec] = {spec.name: spec for spec in sorted(_SPECS, key=lambda s: s.name)}


def undeclared_keys(event: dict) -> set[str]:
    """The keys of ``event`` its type does not declare (all of them for an unknown type)."""
    spec = EVENT_TYPES.get(event.get("event_type", ""))
    return set(event) - spec.keys() if spec else set(event)


def missing_keys(event: dict) -> set[str]:
    """The keys its type always carries that ``event`` lacks."""
    spec = EVENT_TYPES.get(event.get("event_type", ""))
    return spec.required_keys() - set(event) if spec else set()
