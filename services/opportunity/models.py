"""Opportunity's documents: who owns each lead (from lead_assigned) and the activity log."""
from mongoengine import DateTimeField, DictField, Document, IntField, ListField, StringField

ALIAS = "opportunity"


class LeadOwnershipDocument(Document):
    meta = {"db_alias": ALIAS, "collection": "lead_ownership", "indexes": [("rep_id", "-assigned_at"), "team"]}
    id = StringField(primary_key=True)  # lead id
    rep_id = StringField(required=True)
    team = StringField(required=True)
    assigned_at = DateTimeField()
    contacted_at = DateTimeField()
    owner_version = IntField(default=0)  # routing's count of owner changes; the newest wins
    converted_to = StringField()  # the opportunity this lead became
    qualification = DictField()  # sales' verdict: outcome, answers, reason, recycle_on, at, by


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
    mentions = ListField(StringField())
    participants = ListField(StringField())
    next_step = StringField(default="")


class PipelineVersionDocument(Document):
    """One stored version of one pipeline; the highest version of a pipeline id is live."""

    meta = {"db_alias": ALIAS, "collection": "pipeline_versions", "indexes": [("pipeline_id", "-version")]}
    id = StringField(primary_key=True)  # "<pipeline id>@<version>"
    pipeline_id = StringField(required=True)
    version = IntField(required=True)
    definition = DictField(required=True)
    created_at = DateTimeField(required=True)
    created_by = StringField(default="")


class AccountDocument(Document):
    """``_id`` derives from the matching key (web domain, else name): one account per company."""

    meta = {"db_alias": ALIAS, "collection": "accounts"}
    id = StringField(primary_key=True)
    name = StringField(required=True)
    domain = StringField(default="")
    industry = StringField(default="")
    country = StringField(default="")
    employees = IntField(default=0)
    location = StringField(default="")  # as a history file wrote it, e.g. "Philipines"
    parent = StringField(default="")  # name of the company it is a subsidiary of
    created_at = DateTimeField(required=True)


class ContactDocument(Document):
    """``_id`` derives from the email when there is one: one contact per address."""

    meta = {"db_alias": ALIAS, "collection": "contacts", "indexes": ["account_id"]}
    id = StringField(primary_key=True)
    account_id = StringField(required=True)
    first_name = StringField(default="")
    last_name = StringField(default="")
    email = StringField(default="")
    phone = StringField(default="")
    title = StringField(default="")
    created_at = DateTimeField(required=True)


class OpportunityDocument(Document):
    """``_id`` derives from the lead id (a lead converts into one opportunity, however often asked),
    or for imported history from the prefixed external id (importing again finds it)."""

    meta = {"db_alias": ALIAS, "collection": "opportunities",
            "indexes": [("owner_id", "status"), ("team", "status"), ("pipeline_id", "stage_id"), "collaborator_ids"]}
    id = StringField(primary_key=True)
    name = StringField(required=True)
    lead_id = StringField(default="")  # "" for imported history, which has no lead here
    account_id = StringField(default="")
    account_name = StringField(default="")
    contact_id = StringField(default="")
    pipeline_id = StringField(required=True)
    pipeline_version = IntField(default=0)
    stage_id = StringField(required=True)
    owner_id = StringField(required=True)
    team = StringField(default="")
    amount = StringField(default="")  # decimal text
    currency = StringField(default="")
    close_date = StringField(default="")  # YYYY-MM-DD
    status = StringField(required=True, choices=("open", "won", "lost"))
    next_step = StringField(default="")
    qualification = DictField()  # decision_maker, budget, authority, need, timeline, competitor
    probability_override = IntField(null=True)
    probability = IntField(default=0)  # percent where it stands (stage, override, 100/0 once closed)
    forecast_category = StringField(default="")  # pipeline, best_case, commit, closed
    lost_reason = StringField(default="")
    close_note = StringField(default="")
    closed_at = DateTimeField()
    closed_from = StringField(default="")  # the open stage it was closed from, where a reopen returns it
    history = ListField(DictField())  # {from, to, at, by, reason}
    collaborators = ListField(DictField())  # {user_id, role, added_by, added_at}
    collaborator_ids = ListField(StringField())  # the same ids, indexed for "opportunities I work on"
    owner_history = ListField(DictField())  # {from, to, at, by, reason}: the SDR -> AE handoff and later moves
    product = StringField(default="")
    office = StringField(default="")  # the owner's regional office, when the history names one
    manager_id = StringField(default="")
    external_id = StringField(default="")  # id in the system the history came from
    engaged_at = DateTimeField()  # when selling began: conversion, or the history's engage date
    created_at = DateTimeField(required=True)
    created_by = StringField(default="")
    version = IntField(default=1)  # optimistic concurrency: every write checks and raises it


class AttachmentDocument(Document):
    """A file on an opportunity; its bytes are in GridFS (bucket ``attachments``)."""

    meta = {"db_alias": ALIAS, "collection": "attachment_records", "indexes": [("opportunity_id", "-uploaded_at")]}
    id = StringField(primary_key=True)
    opportunity_id = StringField(required=True)
    filename = StringField(required=True)
    content_type = StringField(required=True)
    size = IntField(required=True)
    sha256 = StringField(required=True)
    file_id = StringField(required=True)  # GridFS id
    uploaded_by = StringField(required=True)
    uploaded_at = DateTimeField(required=True)
