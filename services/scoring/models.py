"""Scoring's documents: model versions, the latest score of each lead (with the lead snapshot and the
behaviour it was computed from), background rescore jobs, and trained win models."""
from mongoengine import (BooleanField, DateTimeField, DictField, Document, EmbeddedDocument,
                         EmbeddedDocumentListField, FloatField, IntField, ListField, StringField)

from services.common.jobs import BatchJobDocument

ALIAS = "scoring"


class ScoringModelDocument(Document):
    """One version of the scoring model; the highest version is live."""

    meta = {"db_alias": ALIAS, "collection": "scoring_models"}
    id = IntField(primary_key=True)  # version
    definition = DictField(required=True)
    created_at = DateTimeField(required=True)
    created_by = StringField(default="")


class ReasonDocument(EmbeddedDocument):
    rule_id = StringField(required=True)
    description = StringField(default="")
    points = IntField(required=True)
    group = StringField(default="")
    base_points = IntField(default=0)
    count = IntField(default=0)


class BehaviourDocument(EmbeddedDocument):
    activity_id = StringField(required=True)
    type = StringField(required=True)
    occurred_at = DateTimeField(required=True)


class LeadScoreDocument(Document):
    meta = {"db_alias": ALIAS, "collection": "lead_scores",
            # Few indexes on purpose: every score write maintains each of them (grade filters ride on -total).
            "indexes": [("qualified", "-total"), "-total", {"fields": ["next_change_at"], "sparse": True}]}
    id = StringField(primary_key=True)  # lead id
    revision = IntField(default=0)  # every write checks it: concurrent events for one lead never lose an update
    fit = IntField(default=0)
    engagement = IntField(default=0)
    total = IntField(default=0)
    grade = StringField(default="")
    qualified = BooleanField(default=False)
    threshold = IntField(default=0)
    model_version = StringField(default="")
    reasons = EmbeddedDocumentListField(ReasonDocument)
    tags_added = ListField(StringField())
    tags_removed = ListField(StringField())
    scored_at = DateTimeField()
    next_change_at = DateTimeField()  # when decay or a window will change this score with nothing new happening
    win_probability = FloatField()
    win_model_version = StringField(default="")
    lead = DictField()  # empty while only behaviour has arrived (the lead's capture is still on its way)
    behaviour = EmbeddedDocumentListField(BehaviourDocument)
    outcome = StringField(default="")  # won | lost, once an opportunity from this lead closes
    # The first win probability predicted while the lead's outcome was unknown (what its rep saw when it
    # arrived), kept to measure how the live model really does; and the label it was counted with once
    # the outcome arrived (None: not counted).
    first_win_probability = FloatField()
    first_win_model_version = StringField(default="")
    realised_label = IntField()
    merged_into = StringField(default="")
    owner_id = StringField(default="")  # the rep routing assigned the lead to (who may read its score)
    owner_team = StringField(default="")
    owner_version = IntField(default=0)  # routing's count of owner changes; the newest wins


class RescoreJobDocument(BatchJobDocument):
    meta = {"db_alias": ALIAS, "collection": "rescore_jobs"}
    model_version = StringField(required=True)
    changed = IntField(default=0)


class WinModelDocument(Document):
    """A trained win model: its evaluation, how it was trained, and its artefact in GridFS."""

    meta = {"db_alias": ALIAS, "collection": "win_models", "indexes": ["status"]}
    id = IntField(primary_key=True)  # version
    status = StringField(required=True)  # live | rejected | retired
    status_reason = StringField(default="")
    artefact_id = StringField(required=True)
    config = DictField(required=True)
    evaluation = DictField(required=True)
    features = ListField(StringField())
    trained_at = DateTimeField(required=True)
    trained_by = StringField(default="")
    training_seconds = FloatField(default=0.0)
    # The first version of an unbroken line of retrains with the same settings (its own number when it
    # starts one): realised performance is kept per line, since deals close weeks after the scheduled
    # retrain has replaced the model that predicted them. None on models stored before lines existed.
    lineage = IntField()

    @property
    def line(self) -> int:
        """The lineage, or its own number on a model stored before lineages existed."""
        return self.lineage or self.id


class WinModelPerformanceDocument(Document):
    """How the live predictions of one line of win models (WinModelDocument.lineage) did: sums kept by
    atomic increments as outcomes arrive (win_model.realised_increments), so reading them costs one
    small document."""

    meta = {"db_alias": ALIAS, "collection": "win_model_performance"}
    id = IntField(primary_key=True)  # the lineage: the line's first win model version
    positives = IntField(default=0)
    negatives = IntField(default=0)
    squared_error = FloatField(default=0.0)
    positive_bins = DictField()  # rounded probability (thousandths) -> leads won
    negative_bins = DictField()


class ScheduleDocument(Document):
    """When a periodic job (the scheduled retrain) runs next; replicas claim a run atomically."""

    meta = {"db_alias": ALIAS, "collection": "schedules"}
    id = StringField(primary_key=True)
    next_run_at = DateTimeField(required=True)
