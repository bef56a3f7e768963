"""Scoring's documents: the latest score of each lead, with the lead snapshot it was computed from."""
from mongoengine import (BooleanField, DateTimeField, DictField, Document, EmbeddedDocument,
                         EmbeddedDocumentListField, IntField, StringField)

ALIAS = "scoring"


class ReasonDocument(EmbeddedDocument):
    rule_id = StringField(required=True)
    description = StringField(default="")
    points = IntField(required=True)


class LeadScoreDocument(Document):
    meta = {"db_alias": ALIAS, "collection": "lead_scores", "indexes": [("qualified", "-total"), "-scored_at"]}
    id = StringField(primary_key=True)  # lead id
    fit = IntField(default=0)
    engagement = IntField(default=0)
    total = IntField(default=0)
    qualified = BooleanField(default=False)
    threshold = IntField(required=True)
    model_version = StringField(required=True)
    reasons = EmbeddedDocumentListField(ReasonDocument)
    scored_at = DateTimeField(required=True)
    lead = DictField()
