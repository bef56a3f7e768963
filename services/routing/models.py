"""Routing's documents: reps, assignments (one per lead), follow-up tasks, and leads waiting for a rep."""
from mongoengine import DateTimeField, DictField, Document, ListField, StringField

ALIAS = "routing"


class RepDocument(Document):
    meta = {"db_alias": ALIAS, "collection": "reps", "indexes": [("team", "status")]}
    id = StringField(primary_key=True)
    name = StringField(required=True)
    team = StringField(required=True)
    email = StringField(default="")
    status = StringField(required=True, choices=("active", "paused"))
    updated_at = DateTimeField()


class TaskDocument(Document):
    meta = {"db_alias": ALIAS, "collection": "tasks", "indexes": [("rep_id", "status", "due_at"), "lead_id"]}
    id = StringField(primary_key=True)
    lead_id = StringField(required=True)
    rep_id = StringField(required=True)
    kind = StringField(required=True)
    due_at = DateTimeField(required=True)
    status = StringField(required=True, choices=("open", "completed"))
    created_at = DateTimeField(required=True)


class AssignmentDocument(Document):
    """``_id`` is the lead id: a lead is assigned at most once, whichever replica gets there first."""

    meta = {"db_alias": ALIAS, "collection": "assignments", "indexes": [("rep_id", "-assigned_at")]}
    id = StringField(primary_key=True)
    rep_id = StringField(required=True)
    team = StringField(required=True)
    strategy = StringField(required=True)
    policy_version = StringField(required=True)
    reason = StringField(default="")
    candidates = ListField(StringField())
    lead_captured_at = DateTimeField()
    assigned_at = DateTimeField(required=True)
    task_id = StringField(required=True)


class PendingLeadDocument(Document):
    """A qualified lead no rep could take yet; assigned as soon as a rep becomes available."""

    meta = {"db_alias": ALIAS, "collection": "pending_leads", "indexes": ["qualified_at"]}
    id = StringField(primary_key=True)
    lead = DictField()
    qualified_at = DateTimeField(required=True)
