"""Routing's documents: reps, teams, policy versions, assignments (one per lead, with its history)
and follow-up tasks."""
from mongoengine import (BooleanField, DateTimeField, DictField, Document, IntField, ListField, MapField,
                         StringField)

ALIAS = "routing"


class RepDocument(Document):
    meta = {"db_alias": ALIAS, "collection": "reps", "indexes": [("team", "status")]}
    id = StringField(primary_key=True)
    name = StringField(required=True)
    team = StringField(required=True)
    email = StringField(default="")
    status = StringField(required=True, choices=("active", "paused"))
    role = StringField(default="sdr", choices=("sdr", "ae", "manager"))
    territories = ListField(StringField())
    industries = ListField(StringField())
    size_bands = ListField(StringField())
    languages = ListField(StringField())
    skills = ListField(StringField())
    weight = IntField(default=1)
    capacity = IntField(default=0)
    time_zone = StringField(default="")
    working_hours = MapField(StringField())  # "mon" -> "09:00-18:00"; empty: any time counts
    holidays = ListField(StringField())
    away_from = DateTimeField()
    away_until = DateTimeField()
    away_note = StringField(default="")
    updated_at = DateTimeField()


class TeamDocument(Document):
    meta = {"db_alias": ALIAS, "collection": "teams"}
    id = StringField(primary_key=True)
    name = StringField(required=True)
    managers = ListField(StringField())
    webhook_url = StringField(default="")
    updated_at = DateTimeField()


class RoutingPolicyDocument(Document):
    """One stored version of the routing policy; the highest number is live."""

    meta = {"db_alias": ALIAS, "collection": "routing_policies"}
    id = IntField(primary_key=True)
    definition = DictField(required=True)
    created_at = DateTimeField(required=True)
    created_by = StringField(default="")


class TaskDocument(Document):
    meta = {"db_alias": ALIAS, "collection": "tasks",
            "indexes": [("rep_id", "status", "due_at"), "lead_id", ("status", "next_check_at")]}
    id = StringField(primary_key=True)
    lead_id = StringField(required=True)
    rep_id = StringField(required=True)
    kind = StringField(required=True)
    due_at = DateTimeField(required=True)
    warn_at = DateTimeField()
    status = StringField(required=True, choices=("open", "completed", "reassigned"))
    created_at = DateTimeField(required=True)
    warned_at = DateTimeField()
    breached_at = DateTimeField()
    escalated_at = DateTimeField()
    completed_at = DateTimeField()
    completed_by = StringField(default="")
    escalation_hop = IntField(default=0)
    # When the SLA clock next needs this task looked at (warning, deadline, escalation); None when
    # nothing more will happen. The timer reads open tasks by this alone.
    next_check_at = DateTimeField()


class AssignmentDocument(Document):
    """``_id`` is the lead id: one assignment per lead, whichever replica gets there first. A lead no
    rep could take is here too, ``queued``, with an empty ``rep_id``: the fallback queue."""

    meta = {"db_alias": ALIAS, "collection": "assignments",
            "indexes": [("rep_id", "open"), ("queued", "queued_at"), ("retry_queued", "retry_at"), "account_key"]}
    id = StringField(primary_key=True)
    rep_id = StringField(default="")
    team = StringField(default="")
    strategy = StringField(default="")
    policy_version = StringField(required=True)
    rule_id = StringField(default="")
    reason = StringField(default="")
    considered = ListField(DictField())  # {rep_id, skipped, rule_id}
    history = ListField(DictField())  # {kind, rep_id, at, by, reason, rule_id, policy_version}
    lead = DictField()  # the snapshot rules matched on, kept for escalation and sticky routing
    score = DictField()
    account_key = StringField(default="")
    lead_captured_at = DateTimeField()
    assigned_at = DateTimeField()
    task_id = StringField(default="")
    owner_version = IntField(default=1)
    open = BooleanField(default=True)  # counts toward the rep's open leads (capacity)
    queued = BooleanField(default=False)
    queued_at = DateTimeField()
    retry_queued = BooleanField(default=False)  # a queued lead routing tries again by itself
    retry_at = DateTimeField()  # when, at the earliest (sooner when reps, teams or the policy change)
    first_touch_at = DateTimeField()
