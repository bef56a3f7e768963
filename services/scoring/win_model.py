"""Win probability: learn from leads whose outcome is known, evaluate honestly, explain each prediction.

Pure logic (scikit-learn and numpy; no storage or transport). Features come from whatever fields a
company's leads carry — standard lead fields, every custom field, tags and behaviour counts — chosen and
typed from the training data itself, never from one data set's column names. What sales writes after
first contact leaks the outcome; the admin lists such fields in ``exclude`` and they are never read.
"""
import io
import math
from collections import Counter
from dataclasses import dataclass, field

import joblib
import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import CategoricalNB

from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument
from services.common.events import ACTIVITY_TYPES
from services.common.conditions import CUSTOM_PREFIX

OUTCOME_LABEL = "outcome"  # label from opportunities won or lost in Leadflow itself
# Who the lead is, not what predicts a deal: identities, free text and bookkeeping never become features.
NEVER_FEATURES = frozenset({"lead_id", "email", "phone_e164", "first_name", "last_name", "company", "external_id",
                            "captured_at", "possible_duplicate_of", "needs_review", "address", "website",
                            "company_domain", "custom_fields", "tags", "title"})
STANDARD_FEATURES = ("source", "medium", "campaign", "country", "region", "city", "industry", "company_size",
                     "marketing_consent", "title_seniority", "business_email", "tags")
BEHAVIOUR_PREFIX = "behaviour."
MAX_CATEGORIES = 40  # per field: rarer values share one "other" column, so a free-text field stays bounded
MIN_CATEGORY_COUNT = 5
NUMERIC_SHARE = 0.95  # a field is numeric when this share of its filled values read as numbers
MIN_EXAMPLES = 100
MIN_PER_CLASS = 20
CALIBRATION_BINS = 10
_SENIOR = ("chief", "ceo", "cto", "cfo", "coo", "cio", "cmo", "founder", "owner", "president", "vp", "vice president",
           "director", "head", "总裁", "总经理", "总监", "董事", "创始人", "负责人")


@dataclass(frozen=True)
class TrainingConfig:
    label_field: str = OUTCOME_LABEL
    positive_values: tuple = ("1", "true", "yes", "y", "won", "converted")
    fields: tuple = ()  # empty: every field the leads carry
    exclude: tuple = ()
    use_behaviour: bool = True
    holdout: str = "stratified"  # or "time": the latest leads are held out
    holdout_fraction: float = 0.25
    seed: int = 7

    @classmethod
    def from_dict(cls, stored: dict) -> "TrainingConfig":
        """Back from the dict stored with a trained model (lists there, tuples here)."""
        return cls(**{name: tuple(value) if isinstance(value, list) else value for name, value in stored.items()})


@dataclass(frozen=True)
class Example:
    lead: dict
    behaviour_counts: dict
    label: int
    captured_at: str = ""


@dataclass(frozen=True)
class FeatureColumn:
    name: str
    kind: str  # numeric | categorical | multi
    categories: tuple = ()


@dataclass(frozen=True)
class FeatureSpec:
    columns: tuple

    def width(self) -> int:
        return sum(1 if c.kind == "numeric" else len(c.categories) + 1 for c in self.columns)


@dataclass
class Evaluation:
    examples: int
    train_examples: int
    holdout_examples: int
    positive_rate: float
    roc_auc: float
    brier: float
    baseline_roc_auc: float  # naive Bayes on the categorical fields, the same split
    calibration: list = field(default_factory=list)  # (low, high, count, mean_predicted, observed_rate)
    holdout: str = "stratified"


@dataclass
class TrainedModel:
    spec: FeatureSpec
    estimator: object
    config: TrainingConfig
    evaluation: Evaluation
    holdout: list = field(default_factory=list)  # the hold-out examples, to compare a challenger fairly

    def predict(self, records: list) -> np.ndarray:
        return self.estimator.predict_proba(encode(self.spec, records))[:, 1]

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        joblib.dump(TrainedModel(self.spec, self.estimator, self.config, self.evaluation), buffer, compress=3)
        return buffer.getvalue()


def from_bytes(data: bytes) -> TrainedModel:
    # Artefacts are only ever read from Leadflow's own database, written by this module.
    return joblib.load(io.BytesIO(data))


def validate_config(config: TrainingConfig) -> TrainingConfig:
    violations = []
    label = config.label_field
    if not (label == OUTCOME_LABEL or (label.startswith(CUSTOM_PREFIX) and len(label) > len(CUSTOM_PREFIX))):
        violations.append(FieldViolation("config.label_field", f"must be {OUTCOME_LABEL!r} or custom.<key>"))
    if label in config.fields:
        violations.append(FieldViolation("config.fields", f"the label {label!r} cannot be a feature"))
    for i, name in enumerate(config.fields):
        if not (name in STANDARD_FEATURES or name.startswith((CUSTOM_PREFIX, BEHAVIOUR_PREFIX))):
            violations.append(FieldViolation(f"config.fields[{i}]", f"unknown field {name!r}; expected one of "
                                             f"{', '.join(STANDARD_FEATURES)}, custom.<key> or behaviour.<event>"))
    if config.holdout not in ("stratified", "time"):
        violations.append(FieldViolation("config.holdout", "must be stratified or time"))
    if not 0.1 <= config.holdout_fraction <= 0.5:
        violations.append(FieldViolation("config.holdout_fraction", "must be between 0.1 and 0.5"))
    if violations:
        raise InvalidArgument(violations)
    return config


def label_of(lead: dict, outcome: str, config: TrainingConfig) -> int | None:
    """1, 0, or None when the lead's outcome is not known yet."""
    if config.label_field == OUTCOME_LABEL:
        return {"won": 1, "lost": 0}.get(outcome)
    value = str((lead.get("custom_fields") or {}).get(config.label_field[len(CUSTOM_PREFIX):], "")).strip().lower()
    if not value:
        return None
    return int(value in {v.lower() for v in config.positive_values})


def raw_features(lead: dict, behaviour_counts: dict, config: TrainingConfig) -> dict:
    """Every candidate feature of one lead, by name, before typing."""
    title = (lead.get("title") or "").lower()
    values = {name: lead.get(name) for name in STANDARD_FEATURES if name not in ("title_seniority", "business_email")}
    values["title_seniority"] = ("senior" if any(word in title for word in _SENIOR) else "other") if title else ""
    values["business_email"] = bool(lead.get("company_domain"))
    values["tags"] = [t for t in (lead.get("tags") or ()) if not t.startswith("channel:")]
    for key, value in (lead.get("custom_fields") or {}).items():
        values[CUSTOM_PREFIX + key] = value
    if config.use_behaviour:
        for activity in ACTIVITY_TYPES:
            values[BEHAVIOUR_PREFIX + activity] = behaviour_counts.get(activity, 0)
    excluded = set(config.exclude) | {config.label_field}
    chosen = set(config.fields)
    return {name: value for name, value in values.items()
            if name not in excluded and name not in NEVER_FEATURES and (not chosen or name in chosen)}


def _filled(value) -> bool:
    return value not in (None, "", [])


def _as_number(value) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    try:
        number = float(str(value).replace(",", ""))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def learn_spec(records: list) -> FeatureSpec:
    """Type each field from the data: numeric, categorical (bounded vocabulary) or a tag list."""
    names = sorted({name for record in records for name in record})
    columns = []
    for name in names:
        values = [record.get(name) for record in records if _filled(record.get(name))]
        if not values:
            continue
        if any(isinstance(v, list) for v in values):
            counts = Counter(str(t).lower() for v in values for t in v)
            kind = "multi"
        elif sum(_as_number(v) is not None for v in values) >= NUMERIC_SHARE * len(values):
            if len({_as_number(v) for v in values}) > 1:
                columns.append(FeatureColumn(name, "numeric"))
            continue
        else:
            counts = Counter(str(v).strip().lower() for v in values)
            kind = "categorical"
        categories = tuple(sorted(v for v, n in counts.most_common(MAX_CATEGORIES) if n >= MIN_CATEGORY_COUNT))
        if categories and (len(categories) > 1 or len(values) < len(records)):
            columns.append(FeatureColumn(name, kind, categories))
    return FeatureSpec(tuple(columns))


def encode(spec: FeatureSpec, records: list) -> np.ndarray:
    """One row per record: numbers as they are (NaN when missing), categories one-hot with a column
    for rare or unseen values; a missing category is all zeros."""
    matrix = np.zeros((len(records), spec.width()), dtype=np.float64)
    for row, record in enumerate(records):
        offset = 0
        for column in spec.columns:
            value = record.get(column.name)
            if column.kind == "numeric":
                number = _as_number(value) if _filled(value) else None
                matrix[row, offset] = np.nan if number is None else number
                offset += 1
                continue
            if _filled(value):
                for item in (value if column.kind == "multi" else [value]):
                    text = str(item).strip().lower()
                    index = column.categories.index(text) if text in column.categories else len(column.categories)
                    matrix[row, offset + index] = 1.0
            offset += len(column.categories) + 1
    return matrix


def _estimator(seed: int):
    boosted = HistGradientBoostingClassifier(learning_rate=0.05, max_iter=400, max_leaf_nodes=15,
                                             l2_regularization=1.0, early_stopping=True, validation_fraction=0.15,
                                             n_iter_no_change=20, random_state=seed)
    # Boosted trees rank well but their raw outputs are over-confident; isotonic calibration on held-out
    # folds makes "0.7" mean seven in ten.
    return CalibratedClassifierCV(boosted, method="isotonic", cv=3)


def _split(examples: list, config: TrainingConfig) -> tuple[list, list]:
    if config.holdout == "time":
        ordered = sorted(examples, key=lambda e: e.captured_at)
        cut = int(len(ordered) * (1 - config.holdout_fraction))
        return ordered[:cut], ordered[cut:]
    labels = [e.label for e in examples]
    return train_test_split(examples, test_size=config.holdout_fraction, stratify=labels, random_state=config.seed)


def calibration_table(labels: np.ndarray, predicted: np.ndarray, bins: int = CALIBRATION_BINS) -> list:
    table = []
    for i in range(bins):
        low, high = i / bins, (i + 1) / bins
        inside = (predicted >= low) & ((predicted < high) if i < bins - 1 else (predicted <= high))
        if inside.any():
            table.append((low, high, int(inside.sum()), float(predicted[inside].mean()), float(labels[inside].mean())))
    return table


def naive_bayes_auc(spec: FeatureSpec, train: list, test: list) -> float:
    """The customary CRM baseline: naive Bayes over the categorical fields only."""
    columns = [c for c in spec.columns if c.kind == "categorical"]
    if not columns:
        return 0.5

    def ordinal(records):
        return np.array([[c.categories.index(v) + 1 if (v := str(r.get(c.name) or "").strip().lower())
                          in c.categories else 0 for c in columns] for r in records])
    model = CategoricalNB(min_categories=[len(c.categories) + 1 for c in columns])
    model.fit(ordinal([e.features for e in train]), [e.label for e in train])
    return float(roc_auc_score([e.label for e in test], model.predict_proba(ordinal([e.features for e in test]))[:, 1]))


@dataclass(frozen=True)
class _Featured:
    features: dict
    label: int


def train(examples: list, config: TrainingConfig) -> TrainedModel:
    """Fit on the training part, evaluate on the held-out part, return the model with its evaluation."""
    positives = sum(e.label for e in examples)
    if len(examples) < MIN_EXAMPLES or min(positives, len(examples) - positives) < MIN_PER_CLASS:
        raise FailedPrecondition(
            f"training needs at least {MIN_EXAMPLES} leads with a known outcome and {MIN_PER_CLASS} of each kind "
            f"(found {len(examples)}: {positives} positive, {len(examples) - positives} negative)")
    train_part, holdout_part = _split(examples, config)
    if len({e.label for e in holdout_part}) < 2 or len({e.label for e in train_part}) < 2:
        raise FailedPrecondition("the hold-out split has only one kind of outcome; use holdout: stratified")
    featured_train = [_Featured(raw_features(e.lead, e.behaviour_counts, config), e.label) for e in train_part]
    featured_test = [_Featured(raw_features(e.lead, e.behaviour_counts, config), e.label) for e in holdout_part]
    spec = learn_spec([f.features for f in featured_train])
    if not spec.columns:
        raise FailedPrecondition("no field varies across the training leads: nothing to learn from")
    estimator = _estimator(config.seed)
    estimator.fit(encode(spec, [f.features for f in featured_train]), np.array([f.label for f in featured_train]))
    model = TrainedModel(spec, estimator, config, evaluation=None, holdout=holdout_part)
    labels = np.array([f.label for f in featured_test])
    predicted = model.predict([f.features for f in featured_test])
    model.evaluation = Evaluation(
        examples=len(examples), train_examples=len(train_part), holdout_examples=len(holdout_part),
        positive_rate=positives / len(examples), roc_auc=float(roc_auc_score(labels, predicted)),
        brier=float(brier_score_loss(labels, predicted)),
        baseline_roc_auc=naive_bayes_auc(spec, featured_train, featured_test),
        calibration=calibration_table(labels, predicted), holdout=config.holdout)
    return model


def auc_on(model: TrainedModel, examples: list) -> float | None:
    """How ``model`` ranks ``examples`` (a challenger's hold-out), None if they hold one kind only."""
    labels = [e.label for e in examples]
    if len(set(labels)) < 2:
        return None
    records = [raw_features(e.lead, e.behaviour_counts, model.config) for e in examples]
    return float(roc_auc_score(labels, model.predict(records)))


@dataclass(frozen=True)
class Factor:
    feature: str
    value: str
    effect: float  # change in probability this value makes against leaving it out


def predict_with_factors(model: TrainedModel, lead: dict, behaviour_counts: dict, top: int = 5) -> tuple:
    """Probability for one lead and the values that moved it most: each filled feature is blanked in
    turn and the change in probability measured (model-agnostic, one batch of predictions)."""
    record = raw_features(lead, behaviour_counts, model.config)
    known = [c.name for c in model.spec.columns if _filled(record.get(c.name))
             and not (c.kind == "numeric" and _as_number(record.get(c.name)) == 0)]
    variants = [record] + [{**record, name: None} for name in known]
    probabilities = model.predict(variants)
    factors = [Factor(name, _shown(record[name]), float(probabilities[0] - probabilities[i + 1]))
               for i, name in enumerate(known)]
    factors.sort(key=lambda f: abs(f.effect), reverse=True)
    return float(probabilities[0]), [f for f in factors[:top] if abs(f.effect) >= 0.005]


def predict(model: TrainedModel, lead: dict, behaviour_counts: dict) -> float:
    return float(model.predict([raw_features(lead, behaviour_counts, model.config)])[0])


def predict_many(model: TrainedModel, leads: list) -> list[float]:
    """``predict`` for many (lead, behaviour counts) pairs in one call: a model call costs about the
    same for one row as for two hundred."""
    if not leads:
        return []
    return [float(p) for p in model.predict([raw_features(lead, counts, model.config) for lead, counts in leads])]


def _shown(value) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def is_worse(challenger: Evaluation, live_auc_on_same_holdout: float | None, tolerance: float = 0.005) -> bool:
    """A retrained model replaces the live one only if it ranks the same hold-out at least as well."""
    return live_auc_on_same_holdout is not None and challenger.roc_auc < live_auc_on_same_holdout - tolerance
