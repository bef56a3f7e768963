"""Capture's documents: the lead record and the idempotency keys that make submissions retry-safe."""
from mongoengine import BooleanField, DateTimeField, DictField, Document, IntField, ListField, StringField

ALIAS = "capture"


class LeadDocument(Document):
    meta = {
        "db_alias": ALIAS, "collection": "leads",
        "indexes": ["email", "phone_e164", "company_domain", ("source", "-captured_at"), "-captured_at"],
    }
    id = StringField(primary_key=True)
    captured_at = DateTimeField(required=True)
    email = StringField(default="")
    phone_e164 = StringField(default="")
    first_name = StringField(default="")
    last_name = StringField(default="")
    company = StringField(default="")
    company_domain = StringField(default="")
    title = StringField(default="")
    country = StringField(default="")
    industry = StringField(default="")
    company_size = IntField(default=0)
    source = StringField(required=True)
    medium = StringField(default="")
    campaign = StringField(default="")
    custom_fields = DictField()
    marketing_consent = BooleanField(default=False)
    captured_by = StringField(default="")
    # Every capture of this lead, first one included: channel, campaign, when, by whom.
    touches = ListField(DictField())


class IdempotencyKey(Document):
    """``_id`` is "<principal>:<key>": two integrations can never collide on each other's keys."""

    meta = {"db_alias": ALIAS, "collection": "idempotency_keys"}
    id = StringField(primary_key=True)
    lead_id = StringField(required=True)
    created_at = DateTimeField(required=True)


class ContactKey(Document):
    """``_id`` is "email:<address>" or "phone:<E.164>": the unique index that makes two captures of the
    same person, even at the same moment, end up as one lead."""

    meta = {"db_alias": ALIAS, "collection": "contact_keys"}
    id = StringField(primary_key=True)
    lead_id = StringField(required=True)
