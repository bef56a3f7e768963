"""Reporting's read models: one document per lead with the moment it reached each stage, and one per
opportunity with its latest snapshot."""
from mongoengine import DateTimeField, Decimal128Field, DictField, Document, IntField, StringField

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
    mql_lost_at = DateTimeField()  # the score fell back below the threshold (when the model announces it)
    assigned_at = DateTimeField()
    contacted_at = DateTimeField()
    first_response_due_at = DateTimeField()
    last_touch_at = DateTimeField()
    last_activity_at = DateTimeField()
    unmerged_at = DateTimeField()
    reassigned_at = DateTimeField()  # the latest change of owner after the first assignment
    sla_warned_at = DateTimeField()
    sla_breached_at = DateTimeField()
    task_completed_at = DateTimeField()
    converted_at = DateTimeField()
    stage_changed_at = DateTimeField()  # the opportunity's latest stage change
    won_at = DateTimeField()
    sales_activity_at = DateTimeField()  # the latest activity sales logged
    sales_qualified_at = DateTimeField()
    sales_disqualified_at = DateTimeField()
    recycled_at = DateTimeField()
    lost_at = DateTimeField()


class ConfigChangeDocument(Document):
    """Which rule version went live when, so a number can be read against the rules that produced it."""

    meta = {"db_alias": ALIAS, "collection": "config_changes", "indexes": [("kind", "-occurred_at")]}
    id = StringField(primary_key=True)  # event id
    kind = StringField(required=True)
    version = StringField(required=True)
    changed_by = StringField(default="")
    occurred_at = DateTimeField(required=True)
    source_service = StringField(default="")
    details = DictField()


class OpportunityFactDocument(Document):
    """One document per opportunity, the latest snapshot its events carried (newest ``version``
    wins, whichever arrives last): what win rate, cycle, forecast and value reports read."""

    meta = {"db_alias": ALIAS, "collection": "opportunity_facts",
            "indexes": [("status", "closed_at"), ("owner_id", "status"), ("team", "status"), "pipeline_id"]}
    id = StringField(primary_key=True)  # opportunity id
    lead_id = StringField(default="")
    owner_id = StringField(default="")
    team = StringField(default="")
    manager_id = StringField(default="")
    office = StringField(default="")
    account_id = StringField(default="")
    account_name = StringField(default="")
    product = StringField(default="")
    pipeline_id = StringField(default="")
    stage_id = StringField(default="")
    status = StringField(default="")
    amount = Decimal128Field(null=True)  # exact decimal, summed exactly; None when unknown
    currency = StringField(default="")
    close_date = StringField(default="")
    engaged_at = DateTimeField()
    closed_at = DateTimeField()
    lost_reason = StringField(default="")
    external_id = StringField(default="")
    version = IntField(default=0)
