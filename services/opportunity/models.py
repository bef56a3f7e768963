"""Opportunity's documents: who owns each lead (from lead_assigned) and the activity log."""
from mongoengine import DateTimeField, DictField, Document, IntField, StringField

ALIAS = "opportunity"


class LeadOwnershipDocument(Document):
    meta = {"db_alias": ALIAS, "collection": "lead_ownership", "indexes": [("rep_id", "-assigned_at"), "team"]}
    id = StringField(primary_key=True)  # lead id
    rep_id = StringField(required=True)
    team = StringField(required=True)
    assigned_at = DateTimeField()
    contacted_at = DateTimeField()
    owner_version = IntField(default=0)  # routing's count of owner changes; the newest wins


class ActivityDocument(Document):
    meta = {"db_alias": ALIAS, "collection": "activities", "indexes": [("lead_id", "-occurred_at")]}
    id = StringField(primary_key=True)
    lead_id = StringField(required=True)
    type = StringField(required=True, choices=("call", "email", "meeting", "note"))
    subject = StringField(default="")
    body = StringField(default="")
    outcome = StringField(default="")
    logged_by = StringField(required=True)
    occurred_at = DateTimeField(required=True)
    logged_at = DateTimeField(required=True)


class PipelineVersionDocument(Document):
    """One stored version of one pipeline; the highest version of a pipeline id is live."""

    meta = {"db_alias": ALIAS, "collection": "pipeline_versions", "indexes": [("pipeline_id", "-version")]}
    id = StringField(primary_key=True)  # "<pipeline id>@<version>"
    pipeline_id = StringField(required=True)
    version = IntField(required=True)
    definition = DictField(required=True)
    created_at = DateTimeField(required=True)
    created_by = StringField(default="")
