"""Reporting's documents: the event log (every event received, the source of every projection), and
the read models built from it — one document per lead with the moment it reached each stage, one per
opportunity with its latest snapshot, and the history of rule changes."""
from mongoengine import (BooleanField, DateTimeField, Decimal128Field, DictField, Document, FloatField, IntField,
                         ListField, StringField)

from services.common.jobs import BatchJobDocument

ALIAS = "reporting"


class LeadProgressDocument(Document):
    # captured_at: the period of a lead report read from the records (the roll-ups answer every lead
    # report once ready; the records answer before that, and VerifyReports reads both). Nothing else:
    # a lead's progress is written by each of its events, and on the embedded store every secondary
    # index costs each write ~0.09 ms whether the write changes its key or not (0.15 ms with none,
    # 0.50 ms with the four this collection had), so source, team and rep are matched among the
    # period's leads instead (LEAD_PROGRESS_RETIRED_INDEXES drops the old indexes).
    meta = {"db_alias": ALIAS, "collection": "lead_progress", "indexes": ["captured_at"]}
    id = StringField(primary_key=True)  # lead id
    source = StringField()
    medium = StringField()
    campaign = StringField()
    rep_id = StringField()
    team = StringField()
    win_probability = FloatField()  # the win model's latest, for the forecast
    win_scored_at = DateTimeField()  # when that probability was computed: only a newer one replaces it
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


LEAD_PROGRESS_RETIRED_INDEXES = ("source_1", "team_1_captured_at_1", "rep_id_1_captured_at_1")
# The event log's account and event-type indexes over every event, before they became partial.
EVENT_LOG_RETIRED_INDEXES = ("account_id_1_occurred_at_1", "event_type_1_occurred_at_1")


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
            "indexes": [("status", "closed_at"), ("owner_id", "status"), ("team", "status"), "pipeline_id",
                        "lead_id"]}
    id = StringField(primary_key=True)  # opportunity id
    lead_id = StringField(default="")
    source = StringField(default="")  # the lead's attribution, copied from its progress in either order
    medium = StringField(default="")
    campaign = StringField(default="")
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
    probability = IntField(default=0)
    forecast_category = StringField(default="")
    close_date = StringField(default="")
    engaged_at = DateTimeField()
    closed_at = DateTimeField()
    lost_reason = StringField(default="")
    external_id = StringField(default="")
    version = IntField(default=0)
    moves = ListField(DictField())  # {from, to, at}: every stage move, for the time spent in each stage


class EventLogDocument(Document):
    """Every event reporting received, once (keyed by event id): the lead 360 timeline reads it and a
    rebuild replays it."""

    # Every event is inserted here, so each index is paid by every event (on the embedded store ~0.09 ms
    # per index per write). lead_id: the lead's timeline and the rebuild's replay order. The other two
    # hold only the events their queries ask for: an account's events (its leads' timelines) and logged
    # activities (activities by rep, their roll-up inputs); most events have neither.
    meta = {"db_alias": ALIAS, "collection": "event_log",
            "indexes": [("lead_id", "occurred_at"),
                        {"fields": ["account_id", "occurred_at"], "name": "account_events",
                         "partialFilterExpression": {"account_id": {"$gt": ""}}},
                        {"fields": ["event_type", "occurred_at"], "name": "activities_logged",
                         "partialFilterExpression": {"event_type": "activity_logged"}}]}
    id = StringField(primary_key=True)  # event id
    event_type = StringField(required=True)
    source_service = StringField(required=True)
    occurred_at = DateTimeField(required=True)
    lead_id = StringField(default="")
    opportunity_id = StringField(default="")
    account_id = StringField(default="")
    payload = DictField(required=True)  # the event as received


class RebuildJobDocument(BatchJobDocument):
    meta = {"db_alias": ALIAS, "collection": "rebuild_jobs"}
    rollups_only = BooleanField(default=False)  # the roll-ups from the records: marked by its request


class CampaignCostDocument(Document):
    """What a source (campaign "") or one of its campaigns cost, for cost per won deal."""

    meta = {"db_alias": ALIAS, "collection": "campaign_costs"}
    id = StringField(primary_key=True)  # "<source>|<campaign>"
    source = StringField(required=True)
    campaign = StringField(default="")
    amount = Decimal128Field(required=True)
    currency = StringField(required=True)
    updated_at = DateTimeField()
    updated_by = StringField(default="")


class QuotaDocument(Document):
    """A rep's or a team's target won value over a period."""

    meta = {"db_alias": ALIAS, "collection": "quotas", "indexes": [("period_start", "period_end")]}
    id = StringField(primary_key=True)  # "<owner or team:name>|<start>|<end>"
    owner_id = StringField(default="")
    team = StringField(default="")
    period_start = StringField(required=True)  # YYYY-MM-DD
    period_end = StringField(required=True)
    amount = Decimal128Field(required=True)
    currency = StringField(required=True)
    updated_at = DateTimeField()
    updated_by = StringField(default="")


class RollupDocument(Document):
    """One roll-up: a family's rows for one filter, grouping and day or month (see rollups.py)."""

    # ``k`` repeats the id: a period is a range of keys, and the embedded store answers a range over
    # _id by reading the whole collection, over a secondary index by reading the range.
    meta = {"db_alias": ALIAS, "collection": "rollups", "indexes": ["k"]}
    id = StringField(primary_key=True)
    k = StringField(required=True)
    r = DictField()


class RollupAppliedDocument(Document):
    """What one record ("L:<lead>", "O:<opportunity>", "A:<activity event>") has added to the
    roll-ups: the inputs its contribution was computed from, so the next change subtracts exactly it."""

    meta = {"db_alias": ALIAS, "collection": "rollup_applied"}
    id = StringField(primary_key=True)
    inputs = DictField()


class RollupQueueDocument(Document):
    """A record whose contribution may have changed since it was last applied; ``token`` changes at
    every mark, so an entry marked again while it was being applied is not removed."""

    meta = {"db_alias": ALIAS, "collection": "rollup_queue"}
    id = StringField(primary_key=True)
    token = StringField(required=True)
    at = DateTimeField()  # the latest mark: a report waits for those marked before it was asked


class RollupStateDocument(Document):
    """Which version of the contribution rules the roll-ups were built with, and whether the records
    that existed before them are still being added (reports read the records meanwhile)."""

    meta = {"db_alias": ALIAS, "collection": "rollup_state"}
    id = StringField(primary_key=True)
    version = IntField(required=True)
    seeding = BooleanField(default=False)
    marking = BooleanField(default=False)


class StreamPageDocument(Document):
    """A run of consecutive positions on the event stream (leadflow.events.v1): the events one batch
    added to the event log, numbered in the same transaction, kept for EVENT_STREAM_RETENTION_DAYS.
    A page per batch rather than a document per event: on the embedded store each document and index
    entry costs every event ~0.5 ms, a page costs its batch about as much as one."""

    # last: a subscriber reads the pages after its position in order; retention removes the oldest.
    meta = {"db_alias": ALIAS, "collection": "event_stream_pages",
            "indexes": [{"fields": ["last"], "unique": True}]}
    id = IntField(primary_key=True)  # its first position
    last = IntField(required=True)
    stored_at = DateTimeField(required=True)
    events = ListField(DictField())  # {source_service, payload}: position = first + index


class StreamHeadDocument(Document):
    """Both ends of the stream: the last position given out (each batch takes its run with one atomic
    $inc, see stream_store.py) and the oldest one retention keeps."""

    meta = {"db_alias": ALIAS, "collection": "event_stream_head"}
    id = StringField(primary_key=True)
    position = IntField(required=True)
    oldest = IntField(default=1)


class WebhookSubscriptionDocument(Document):
    """A URL that receives the stream's events of some types, one at a time, with where it stands."""

    meta = {"db_alias": ALIAS, "collection": "webhook_subscriptions"}
    id = StringField(primary_key=True)
    url = StringField(required=True)
    event_types = ListField(StringField())
    description = StringField(default="")
    secret = StringField(required=True)  # signs each delivery; shown to the admin once
    position = IntField(default=0)  # the last position delivered or given up
    failed_attempts = IntField(default=0)  # at the next event
    last_error = StringField(default="")
    next_attempt_at = DateTimeField(required=True)
    lease_until = DateTimeField(required=True)  # a replica delivering it holds it until then
    created_at = DateTimeField(required=True)


class WebhookDeadLetterDocument(Document):
    """A delivery given up after WEBHOOK_MAX_ATTEMPTS; ``replay`` queues it for another try."""

    # Listed per subscription, newest first; the replay queue is read per subscription in stream order.
    meta = {"db_alias": ALIAS, "collection": "webhook_dead_letters",
            "indexes": [("subscription_id", "-dead_lettered_at")]}
    id = StringField(primary_key=True)  # subscription id:event id
    subscription_id = StringField(required=True)
    position = IntField(required=True)
    event_id = StringField(required=True)
    event_type = StringField(required=True)
    payload = DictField(required=True)
    attempts = IntField(required=True)
    last_error = StringField(default="")
    dead_lettered_at = DateTimeField(required=True)
    replay = BooleanField(default=False)
