"""Reporting's read model: one document per lead with the moment it reached each stage."""
from mongoengine import DateTimeField, Document, StringField

ALIAS = "reporting"


class LeadProgressDocument(Document):
    meta = {"db_alias": ALIAS, "collection": "lead_progress",
            "indexes": ["source"] + [(f"{stage}_at",) for stage in
                                     ("captured", "scored", "qualified", "assigned", "contacted")]}
    id = StringField(primary_key=True)  # lead id
    source = StringField()
    rep_id = StringField()
    captured_at = DateTimeField()
    scored_at = DateTimeField()
    qualified_at = DateTimeField()
    assigned_at = DateTimeField()
    contacted_at = DateTimeField()
    first_response_due_at = DateTimeField()
    last_touch_at = DateTimeField()
    last_activity_at = DateTimeField()
    unmerged_at = DateTimeField()
