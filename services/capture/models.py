"""Capture's documents: the lead record, the keys that recognise a lead again, forms, import
mappings, behaviour activity, and what a merge needs to be undone."""
from mongoengine import (BooleanField, DateTimeField, DictField, Document, IntField, ListField, StringField)

ALIAS = "capture"


class LeadDocument(Document):
    meta = {
        "db_alias": ALIAS, "collection": "leads",
        # Only the indexes queries use: each one costs every insert. Measured on the embedded store
        # (bench section (vii), 10,000 imported leads, µs per lead inserted 500 at a time): no
        # secondary index 104, each alone +19 (-captured_at), +251 (search_terms, 18 terms a lead),
        # +79 (tags), +24 (owner_id); all four 531. Exact identities are looked up in contact_keys.
        "indexes": [
            "-captured_at",  # SearchLeads / ListLeads: newest first, and the captured_from/_to filter
            # SearchLeads' words, each an exact lookup of a stored prefix (the store has no text index);
            # the dearest index, so matching.search_terms keeps only names, company, city, email, phone.
            "search_terms",
            "tags",  # SearchLeads' tag filter (the console's tag chips)
            "owner_id",  # a rep's own leads: the console inbox and SearchLeads for the REP role
        ],
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
    region = StringField(default="")
    city = StringField(default="")
    address = StringField(default="")
    website = StringField(default="")
    industry = StringField(default="")
    company_size = IntField(default=0)
    source = StringField(required=True)
    medium = StringField(default="")
    campaign = StringField(default="")
    custom_fields = DictField()
    tags = ListField(StringField())
    marketing_consent = BooleanField(default=False)
    consent_text = StringField(default="")
    consent_given_at = DateTimeField()
    consent_recorded_by = StringField(default="")
    external_id = StringField(default="")
    visitor_id = StringField(default="")
    needs_review = BooleanField(default=False)
    possible_duplicate_of = ListField(StringField())
    other_contacts = ListField(StringField())
    owner_id = StringField(default="")
    owner_team = StringField(default="")
    owner_version = IntField(default=0)  # routing's count of owner changes; the newest wins
    merged_into = StringField(default="")
    captured_by = StringField(default="")
    # Every capture of this lead, first one included: channel, campaign, when, by whom.
    touches = ListField(DictField())
    search_terms = ListField(StringField())


class IdempotencyKey(Document):
    """``_id`` is "<principal>:<key>" (or "webhook:<source>:<delivery>"): two callers can never
    collide on each other's keys."""

    meta = {"db_alias": ALIAS, "collection": "idempotency_keys"}
    id = StringField(primary_key=True)
    lead_id = StringField(required=True)
    created_at = DateTimeField(required=True)


class ContactKey(Document):
    """``_id`` is "email:<address>", "phone:<E.164>" or "external:<id>": the unique index that makes
    two captures of the same person, even at the same moment, end up as one lead."""

    meta = {"db_alias": ALIAS, "collection": "contact_keys"}
    id = StringField(primary_key=True)
    lead_id = StringField(required=True)


class MatchCandidates(Document):
    """The latest leads under one fuzzy-match key (company domain or name, plus name initial), with
    just what matching compares. One small document per key keeps the candidates of a capture to a
    bounded read, however many people a company has."""

    meta = {"db_alias": ALIAS, "collection": "match_candidates"}
    id = StringField(primary_key=True)
    candidates = ListField(DictField())


class MergeRecord(Document):
    """What MergeLeads changed, so UnmergeLeads can take exactly that back. ``_id`` is the duplicate."""

    meta = {"db_alias": ALIAS, "collection": "merges"}
    id = StringField(primary_key=True)
    primary_id = StringField(required=True)
    duplicate = DictField(required=True)  # the duplicate's document as it was
    filled_fields = DictField()  # field -> value the merge filled in on the primary
    added_tags = ListField(StringField())
    added_contacts = ListField(StringField())
    added_custom_fields = ListField(StringField())
    moved_keys = ListField(StringField())
    moved_touches = IntField(default=0)
    moved_visitors = ListField(StringField())
    primary_consent = DictField()  # the primary's consent before the merge, when the merge gave it one
    merged_at = DateTimeField(required=True)
    merged_by = StringField(default="")


class FormDocument(Document):
    meta = {"db_alias": ALIAS, "collection": "forms", "indexes": [{"fields": ["public_key"], "unique": True}]}
    id = StringField(primary_key=True)  # form_id
    public_key = StringField(required=True)
    version = IntField(required=True)
    definition = DictField(required=True)
    updated_at = DateTimeField(required=True)
    updated_by = StringField(default="")


class ImportMapping(Document):
    """The column mapping last saved for a source, used when an import of that source gives none."""

    meta = {"db_alias": ALIAS, "collection": "import_mappings"}
    id = StringField(primary_key=True)  # source
    mapping = DictField(required=True)
    updated_at = DateTimeField(required=True)


class LeadActivityDocument(Document):
    """Something a lead (or a still-anonymous visitor) did. ``_id`` is the activity id, so a retried
    recording is one document."""

    meta = {"db_alias": ALIAS, "collection": "activities",
            "indexes": [("lead_id", "-occurred_at"), ("visitor_id", "lead_id")]}
    id = StringField(primary_key=True)
    type = StringField(required=True)
    lead_id = StringField(default="")
    visitor_id = StringField(default="")
    url = StringField(default="")
    properties = DictField()
    occurred_at = DateTimeField(required=True)
    recorded_at = DateTimeField(required=True)
    recorded_by = StringField(default="")


class VisitorLink(Document):
    """An anonymous visitor id that identified itself as a lead. ``_id`` is the visitor id."""

    meta = {"db_alias": ALIAS, "collection": "visitors"}
    id = StringField(primary_key=True)
    lead_id = StringField(required=True)
    linked_at = DateTimeField(required=True)
