"""Scoring: domain <-> document <-> proto."""
from google.protobuf import struct_pb2
from leadflow.scoring.v1 import scoring_pb2

from services.common.mappers import struct_to_dict, to_timestamp
from services.scoring import win_model
from services.scoring.domain import BehaviourEvent, Reason, Score, effective_tags
from services.scoring.models import ReasonDocument

_FIELDS = ("fit", "engagement", "total", "qualified", "threshold", "model_version", "scored_at", "grade",
           "next_change_at", "win_probability", "win_model_version")
_HOLDOUTS = {"stratified": scoring_pb2.HOLDOUT_KIND_STRATIFIED, "time": scoring_pb2.HOLDOUT_KIND_TIME}


def behaviour_of(document) -> list:
    return [BehaviourEvent(b.activity_id, b.type, b.occurred_at) for b in document.behaviour]


def apply_score(document, score: Score) -> None:
    for name in _FIELDS:
        setattr(document, name, getattr(score, name))
    document.reasons = [ReasonDocument(**vars(r)) for r in score.reasons]
    document.tags_added, document.tags_removed = list(score.tags_added), list(score.tags_removed)


def score_from_document(document) -> Score:
    return Score(lead_id=document.id,
                 reasons=[Reason(r.rule_id, r.description, r.points, r.group, r.base_points, r.count)
                          for r in document.reasons],
                 tags_added=list(document.tags_added), tags_removed=list(document.tags_removed),
                 **{name: getattr(document, name) for name in _FIELDS})


def factor_to_proto(factor: win_model.Factor) -> scoring_pb2.WinFactor:
    return scoring_pb2.WinFactor(feature=factor.feature, value=factor.value, effect=factor.effect)


def score_to_proto(document, factors=()) -> scoring_pb2.LeadScore:
    score = score_from_document(document)
    message = scoring_pb2.LeadScore(
        lead_id=score.lead_id, fit=score.fit, engagement=score.engagement, total=score.total,
        qualified=score.qualified, threshold=score.threshold, model_version=score.model_version,
        reasons=[scoring_pb2.ScoreReason(rule_id=r.rule_id, description=r.description, points=r.points,
                                         group=r.group, base_points=r.base_points, count=r.count)
                 for r in score.reasons],
        scored_at=to_timestamp(score.scored_at), grade=score.grade,
        tags=effective_tags(document.lead or {}, score), tags_added=score.tags_added,
        tags_removed=score.tags_removed, decay_points=score.decay_points,
        has_win_probability=score.win_probability is not None, win_probability=score.win_probability or 0.0,
        win_model_version=score.win_model_version, win_factors=[factor_to_proto(f) for f in factors])
    if score.next_change_at:
        message.next_change_at.CopyFrom(to_timestamp(score.next_change_at))
    return message


def definition_from_proto(definition: struct_pb2.Struct) -> dict:
    return struct_to_dict(definition)


def model_to_proto(number: int, definition: dict, created_at=None, created_by: str = "", live: bool = False,
                   version: str = "") -> scoring_pb2.ScoringModel:
    message = scoring_pb2.ScoringModel(version=version, number=number, created_by=created_by, live=live)
    message.definition.update(definition)
    if created_at:
        message.created_at.CopyFrom(to_timestamp(created_at))
    return message


def job_to_proto(job) -> scoring_pb2.RescoreJob:
    message = scoring_pb2.RescoreJob(job_id=job.id, model_version=job.model_version, done=job.status == "done",
                                     total=job.total, processed=job.processed, changed=job.changed,
                                     created_at=to_timestamp(job.created_at))
    if job.finished_at:
        message.finished_at.CopyFrom(to_timestamp(job.finished_at))
    return message


def training_config_from_proto(config: scoring_pb2.WinModelConfig) -> win_model.TrainingConfig:
    defaults = win_model.TrainingConfig()
    return win_model.TrainingConfig(
        label_field=config.label_field.strip() or defaults.label_field,
        positive_values=tuple(v.strip().lower() for v in config.positive_values if v.strip())
        or defaults.positive_values,
        fields=tuple(f.strip() for f in config.fields if f.strip()),
        exclude=tuple(f.strip() for f in config.exclude if f.strip()),
        use_behaviour=not config.ignore_behaviour,
        holdout="time" if config.holdout == scoring_pb2.HOLDOUT_KIND_TIME else "stratified",
        holdout_fraction=config.holdout_fraction or defaults.holdout_fraction)


def _calibration_to_proto(table: list) -> list:
    return [scoring_pb2.CalibrationBin(low=low, high=high, leads=leads, mean_predicted=mean, observed_rate=rate)
            for low, high, leads, mean, rate in table]


def realised_to_proto(realised: win_model.RealisedPerformance, trained_roc_auc: float,
                      since_version: str) -> scoring_pb2.RealisedPerformance:
    has_auc = realised.roc_auc is not None
    return scoring_pb2.RealisedPerformance(
        since_version=since_version,
        outcomes=realised.outcomes, positives=realised.positives, has_roc_auc=has_auc,
        roc_auc=realised.roc_auc if has_auc else 0.0, brier=realised.brier or 0.0,
        calibration=_calibration_to_proto(realised.calibration),
        roc_auc_gap=realised.roc_auc - trained_roc_auc if has_auc else 0.0)


def win_model_to_proto(document, realised: win_model.RealisedPerformance) -> scoring_pb2.WinModel:
    config, evaluation = document.config, document.evaluation
    return scoring_pb2.WinModel(
        version=f"win-model@{document.id}", number=document.id, status=document.status,
        status_reason=document.status_reason,
        config=scoring_pb2.WinModelConfig(
            label_field=config["label_field"], positive_values=config["positive_values"], fields=config["fields"],
            exclude=config["exclude"], ignore_behaviour=not config["use_behaviour"],
            holdout=_HOLDOUTS[config["holdout"]], holdout_fraction=config["holdout_fraction"]),
        examples=evaluation["examples"], train_examples=evaluation["train_examples"],
        holdout_examples=evaluation["holdout_examples"], positive_rate=evaluation["positive_rate"],
        roc_auc=evaluation["roc_auc"], brier=evaluation["brier"], baseline_roc_auc=evaluation["baseline_roc_auc"],
        calibration=_calibration_to_proto(evaluation["calibration"]),
        realised=realised_to_proto(realised, evaluation["roc_auc"], f"win-model@{document.line}"),
        features=list(document.features), trained_at=to_timestamp(document.trained_at),
        trained_by=document.trained_by, training_seconds=document.training_seconds,
        # Models trained before cross-validation have none of these.
        folds=evaluation.get("folds", 0), roc_auc_sd=evaluation.get("roc_auc_sd", 0.0),
        brier_sd=evaluation.get("brier_sd", 0.0), logistic_roc_auc=evaluation.get("logistic_roc_auc", 0.0),
        logistic_brier=evaluation.get("logistic_brier", 0.0),
        calibration_method=evaluation.get("calibration_method", ""),
        model_kind=evaluation.get("model_kind", "gradient_boosting"),
        calibration_candidates=[scoring_pb2.CalibrationCandidate(method=method, roc_auc=auc, brier=brier)
                                for method, auc, brier in evaluation.get("calibration_candidates", [])])


def lead_from_fields(fields: dict) -> dict:
    """An ad-hoc record (PredictWinProbability) in the shape of capture's lead snapshot."""
    lead, custom = {}, {}
    for name, value in fields.items():
        if name.startswith("custom."):
            custom[name[len("custom."):]] = value
        elif name == "tags":
            lead["tags"] = [t.strip() for t in value.split(",") if t.strip()]
        elif name == "company_size":
            lead[name] = int(value) if value.strip().isdigit() else 0
        elif name == "marketing_consent":
            lead[name] = value.strip().lower() in ("1", "true", "yes")
        else:
            lead[name] = value
    lead["custom_fields"] = custom
    return lead
