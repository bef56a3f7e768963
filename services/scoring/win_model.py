"""Win probability: learn from leads whose outcome is known, evaluate honestly, explain each prediction.

Pure logic (scikit-learn and numpy; no storage or transport). Features come from whatever fields a
company's leads carry — standard lead fields, every custom field, tags and behaviour counts — chosen and
typed from the training data itself, never from one data set's column names. What sales writes after
first contact leaks the outcome; the admin lists such fields in ``exclude`` and they are never read.
"""
import io
import math
from collections import Counter
from dataclasses import dataclass, field, replace

import joblib
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, TimeSeriesSplit
from sklearn.naive_bayes import CategoricalNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

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
CV_FOLDS = 5
CALIBRATIONS = ("none", "sigmoid", "isotonic")  # "none" first: the others are measured against its ranking
MAX_AUC_LOST_TO_CALIBRATION = 0.002
GRADIENT_BOOSTING, LOGISTIC_REGRESSION = "gradient_boosting", "logistic_regression"
_SENIOR = ("chief", "ceo", "cto", "cfo", "coo", "cio", "cmo", "founder", "owner", "president", "vp", "vice president",
           "director", "head", "总裁", "总经理", "总监", "董事", "创始人", "负责人")


@dataclass(frozen=True)
class TrainingConfig:
    label_field: str = OUTCOME_LABEL
    positive_values: tuple = ("1", "true", "yes", "y", "won", "converted")
    fields: tuple = ()  # empty: every field the leads carry
    exclude: tuple = ()
    use_behaviour: bool = True
    holdout: str = "stratified"  # how cross-validation cuts its folds; or "time": each fold tests later leads
    holdout_fraction: float = 0.25  # unused since evaluation is by cross-validation; stored configurations keep it
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
    """How the model's settings did under cross-validation; the live model is then refit on every example."""
    examples: int
    train_examples: int  # the live model is fit on every example
    holdout_examples: int  # examples tested out of fold (all of them, or all but the first block by time)
    positive_rate: float
    roc_auc: float  # mean over the folds
    brier: float
    baseline_roc_auc: float  # naive Bayes on the categorical fields, the same folds
    calibration: list = field(default_factory=list)  # (low, high, count, mean_predicted, observed_rate), out of fold
    holdout: str = "stratified"  # how the folds were cut: stratified, or time-ordered
    folds: int = 0
    roc_auc_sd: float = 0.0
    brier_sd: float = 0.0
    logistic_roc_auc: float = 0.0  # a plain logistic regression on the same features and folds
    logistic_brier: float = 0.0
    calibration_method: str = ""  # none | sigmoid | isotonic, chosen by cross-validated Brier
    calibration_candidates: list = field(default_factory=list)  # (method, roc_auc, brier) of each, for the trees
    model_kind: str = GRADIENT_BOOSTING  # or LOGISTIC_REGRESSION: the one that ranked the folds better


@dataclass
class TrainedModel:
    spec: FeatureSpec
    estimator: object
    config: TrainingConfig
    evaluation: Evaluation

    def predict(self, records: list) -> np.ndarray:
        return self.estimator.predict_proba(encode(self.spec, records))[:, 1]

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        joblib.dump(self, buffer, compress=3)
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


def _boosted(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(learning_rate=0.05, max_iter=400, max_leaf_nodes=15, l2_regularization=1.0,
                                          early_stopping=True, validation_fraction=0.15, n_iter_no_change=20,
                                          random_state=seed)


def _logistic():
    """The baseline anyone could fit: one-hot categories, numbers imputed and scaled, a logistic regression."""
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                         LogisticRegression(max_iter=2000, C=1.0))


class Calibrated:
    """Boosted trees fit on every example, their probability mapped through a calibrator fit on
    out-of-fold predictions (so it learns how over-confident unseen leads make the trees)."""

    def __init__(self, boosted, method: str, calibrator):
        self.boosted, self.method, self.calibrator = boosted, method, calibrator

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        raw = self.boosted.predict_proba(matrix)[:, 1]
        calibrated = _apply_calibrator(self.method, self.calibrator, raw)
        return np.column_stack([1 - calibrated, calibrated])


def _logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(probability, 1e-6, 1 - 1e-6)
    return np.log(clipped / (1 - clipped)).reshape(-1, 1)


def _fit_calibrator(method: str, raw: np.ndarray, labels: np.ndarray):
    if method == "sigmoid":  # Platt scaling: a logistic curve over the trees' log-odds
        return LogisticRegression(C=1e6, max_iter=1000).fit(_logit(raw), labels)
    if method == "isotonic":
        return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, labels)
    return None


def _apply_calibrator(method: str, calibrator, raw: np.ndarray) -> np.ndarray:
    if method == "sigmoid":
        return calibrator.predict_proba(_logit(raw))[:, 1]
    if method == "isotonic":
        return calibrator.predict(raw)
    return raw


def _folds(examples: list, config: TrainingConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train indexes, test indexes) per fold: stratified, or forward in time (train on the past, test on
    the block after it), as the configuration asks."""
    labels = np.array([e.label for e in examples])
    if config.holdout == "time":
        order = np.argsort([e.captured_at for e in examples], kind="stable")
        folds = [(order[train], order[test]) for train, test in TimeSeriesSplit(n_splits=CV_FOLDS).split(order)]
    else:
        splitter = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=config.seed)
        folds = list(splitter.split(np.zeros(len(labels)), labels))
    for train_index, test_index in folds:
        if len(set(labels[train_index])) < 2 or len(set(labels[test_index])) < 2:
            raise FailedPrecondition("a cross-validation fold has only one kind of outcome (the outcomes are bunched "
                                     "in time); use holdout: stratified")
    return folds


@dataclass
class CrossValidation:
    """Out-of-fold predictions of one configuration's settings, each lead predicted by a model that never saw it."""
    raw: np.ndarray  # the boosted trees' probabilities (NaN where a lead was never tested: the first time block)
    logistic: np.ndarray
    naive_bayes: np.ndarray
    fold_of: np.ndarray  # which fold tested each lead (-1: none)


def _featured(examples: list, config: TrainingConfig) -> list[dict]:
    """The one feature-building step, for training, evaluation and (through the same raw_features) live scoring."""
    return [raw_features(e.lead, e.behaviour_counts, config) for e in examples]


def cross_validate(records: list, labels: np.ndarray, seed: int, folds: list) -> CrossValidation:
    """Out-of-fold predictions for the leads' feature records (built once, by ``_featured``)."""
    raw, logistic, naive = (np.full(len(records), np.nan) for _ in range(3))
    fold_of = np.full(len(records), -1)
    for number, (train_index, test_index) in enumerate(folds):
        # Everything is learnt on the fold's training part alone, vocabulary included, as for the live model.
        spec = learn_spec([records[i] for i in train_index])
        if not spec.columns:
            raise FailedPrecondition("no field varies across the training leads: nothing to learn from")
        train_matrix, test_matrix = encode(spec, [records[i] for i in train_index]), \
            encode(spec, [records[i] for i in test_index])
        raw[test_index] = _boosted(seed).fit(train_matrix, labels[train_index]).predict_proba(test_matrix)[:, 1]
        logistic[test_index] = _logistic().fit(train_matrix, labels[train_index]).predict_proba(test_matrix)[:, 1]
        naive[test_index] = naive_bayes_probabilities(spec, [records[i] for i in train_index], labels[train_index],
                                                      [records[i] for i in test_index])
        fold_of[test_index] = number
    return CrossValidation(raw, logistic, naive, fold_of)


def _per_fold(labels: np.ndarray, predicted: np.ndarray, fold_of: np.ndarray) -> tuple[list, list]:
    aucs, briers = [], []
    for number in sorted(set(fold_of.tolist()) - {-1}):
        inside = fold_of == number
        aucs.append(float(roc_auc_score(labels[inside], predicted[inside])))
        briers.append(float(brier_score_loss(labels[inside], predicted[inside])))
    return aucs, briers


def _calibrated_out_of_fold(method: str, labels: np.ndarray, cv: CrossValidation) -> np.ndarray:
    """Each fold's predictions through a calibrator fit on the other folds' out-of-fold predictions."""
    calibrated = np.full(len(labels), np.nan)
    tested = cv.fold_of >= 0
    for number in sorted(set(cv.fold_of.tolist()) - {-1}):
        inside, others = cv.fold_of == number, tested & (cv.fold_of != number)
        calibrator = _fit_calibrator(method, cv.raw[others], labels[others])
        calibrated[inside] = _apply_calibrator(method, calibrator, cv.raw[inside])
    return calibrated


def choose_calibration(labels: np.ndarray, cv: CrossValidation) -> tuple[str, list, np.ndarray]:
    """The calibration with the lowest cross-validated Brier score among those that lose at most
    MAX_AUC_LOST_TO_CALIBRATION of the trees' own ranking (isotonic's ties can cost more on small data)."""
    candidates, predictions = [], {}
    for method in CALIBRATIONS:
        predicted = cv.raw if method == "none" else _calibrated_out_of_fold(method, labels, cv)
        aucs, briers = _per_fold(labels, predicted, cv.fold_of)
        candidates.append((method, float(np.mean(aucs)), float(np.mean(briers))))
        predictions[method] = predicted
    raw_auc = candidates[0][1]
    keeping_rank = [c for c in candidates if c[1] >= raw_auc - MAX_AUC_LOST_TO_CALIBRATION]
    method = min(keeping_rank, key=lambda c: c[2])[0]
    return method, candidates, predictions[method]


@dataclass(frozen=True)
class Selection:
    kind: str
    calibration: str
    candidates: list
    predicted: np.ndarray  # out of fold


def select(labels: np.ndarray, cv: CrossValidation) -> Selection:
    """Boosted trees (calibrated as chosen) or the plain logistic regression, whichever ranks the folds
    better: on a few hundred leads with simple effects the regression often wins, on thousands with
    interactions the trees do. Either way the live model is never worse than that baseline on the folds."""
    method, candidates, predicted = choose_calibration(labels, cv)
    trees_auc = float(np.mean(_per_fold(labels, predicted, cv.fold_of)[0]))
    logistic_auc = float(np.mean(_per_fold(labels, cv.logistic, cv.fold_of)[0]))
    if logistic_auc > trees_auc:
        return Selection(LOGISTIC_REGRESSION, "none", candidates, cv.logistic)
    return Selection(GRADIENT_BOOSTING, method, candidates, predicted)


def calibration_table(labels: np.ndarray, predicted: np.ndarray, bins: int = CALIBRATION_BINS,
                      counts: np.ndarray | None = None) -> list:
    """(low, high, leads, mean predicted, observed rate) per bin of predicted probability; ``counts``
    says how many leads each (label, prediction) pair stands for (one each when not given)."""
    counts = np.ones(len(labels)) if counts is None else counts
    table = []
    for i in range(bins):
        low, high = i / bins, (i + 1) / bins
        inside = (predicted >= low) & ((predicted < high) if i < bins - 1 else (predicted <= high))
        leads = counts[inside].sum()
        if leads:
            table.append((low, high, int(leads), float(np.average(predicted[inside], weights=counts[inside])),
                          float(np.average(labels[inside], weights=counts[inside]))))
    return table


def naive_bayes_probabilities(spec: FeatureSpec, train_records: list, train_labels, test_records: list) -> np.ndarray:
    """The customary CRM baseline: naive Bayes over the categorical fields only."""
    columns = [c for c in spec.columns if c.kind == "categorical"]
    if not columns:
        return np.full(len(test_records), float(np.mean(train_labels)))

    def ordinal(records):
        return np.array([[c.categories.index(v) + 1 if (v := str(r.get(c.name) or "").strip().lower())
                          in c.categories else 0 for c in columns] for r in records])
    model = CategoricalNB(min_categories=[len(c.categories) + 1 for c in columns])
    model.fit(ordinal(train_records), train_labels)
    return model.predict_proba(ordinal(test_records))[:, 1]


def _in_canonical_order(examples: list) -> list:
    """The examples in an order of their own (capture time, then who they are), not the store's: the folds
    and the trees' early-stopping split then depend only on the leads, so the same leads train the same model."""
    return sorted(examples, key=lambda e: (e.captured_at or "", str(e.lead.get("external_id") or ""),
                                           str(e.lead.get("email") or ""), str(e.lead.get("phone_e164") or ""),
                                           str(e.lead.get("lead_id") or "")))


def _check_enough(examples: list) -> None:
    positives = sum(e.label for e in examples)
    if len(examples) < MIN_EXAMPLES or min(positives, len(examples) - positives) < MIN_PER_CLASS:
        raise FailedPrecondition(
            f"training needs at least {MIN_EXAMPLES} leads with a known outcome and {MIN_PER_CLASS} of each kind "
            f"(found {len(examples)}: {positives} positive, {len(examples) - positives} negative)")


def train(examples: list, config: TrainingConfig) -> TrainedModel:
    """Evaluate the settings by cross-validation (the spread across folds included), choose the
    calibration, then refit the live model on every example."""
    _check_enough(examples)
    examples = _in_canonical_order(examples)
    folds = _folds(examples, config)
    labels = np.array([e.label for e in examples])
    records = _featured(examples, config)
    spec = learn_spec(records)
    if not spec.columns:
        raise FailedPrecondition("no field varies across the training leads: nothing to learn from")
    cv = cross_validate(records, labels, config.seed, folds)
    chosen = select(labels, cv)
    aucs, briers = _per_fold(labels, chosen.predicted, cv.fold_of)
    logistic_aucs, logistic_briers = _per_fold(labels, cv.logistic, cv.fold_of)
    naive_aucs, _ = _per_fold(labels, cv.naive_bayes, cv.fold_of)
    tested = cv.fold_of >= 0

    matrix = encode(spec, records)
    if chosen.kind == LOGISTIC_REGRESSION:
        estimator = _logistic().fit(matrix, labels)
    else:
        # The calibrator learns from the out-of-fold predictions: how the trees do on leads they have not seen.
        estimator = Calibrated(_boosted(config.seed).fit(matrix, labels), chosen.calibration,
                               _fit_calibrator(chosen.calibration, cv.raw[tested], labels[tested]))
    evaluation = Evaluation(
        examples=len(examples), train_examples=len(examples), holdout_examples=int(tested.sum()),
        positive_rate=float(labels.mean()), roc_auc=float(np.mean(aucs)), brier=float(np.mean(briers)),
        baseline_roc_auc=float(np.mean(naive_aucs)),
        calibration=calibration_table(labels[tested], chosen.predicted[tested]), holdout=config.holdout,
        folds=len(folds),
        roc_auc_sd=float(np.std(aucs)), brier_sd=float(np.std(briers)),
        logistic_roc_auc=float(np.mean(logistic_aucs)), logistic_brier=float(np.mean(logistic_briers)),
        calibration_method=chosen.calibration, calibration_candidates=chosen.candidates, model_kind=chosen.kind)
    return TrainedModel(spec, estimator, config, evaluation)


def challenge(challenger: TrainedModel, live_config: TrainingConfig, examples: list) -> float | None:
    """The live model's settings cross-validated on the challenger's folds (the same leads, labels and
    cuts), so the two are compared on the same footing; None when the settings are the same (a retrain
    on newer leads), which nothing needs to beat."""
    live_config = replace(live_config, label_field=challenger.config.label_field,
                          positive_values=challenger.config.positive_values, holdout=challenger.config.holdout,
                          holdout_fraction=challenger.config.holdout_fraction, seed=challenger.config.seed)
    if live_config == challenger.config:
        return None
    examples = _in_canonical_order(examples)
    labels = np.array([e.label for e in examples])
    cv = cross_validate(_featured(examples, live_config), labels, live_config.seed,
                        _folds(examples, challenger.config))
    return float(np.mean(_per_fold(labels, select(labels, cv).predicted, cv.fold_of)[0]))


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


def is_worse(challenger: Evaluation, live_auc_on_same_folds: float | None, tolerance: float = 0.005) -> bool:
    """A retrained model replaces the live one only if its settings rank the same folds at least as well."""
    return live_auc_on_same_folds is not None and challenger.roc_auc < live_auc_on_same_folds - tolerance


# ---- how the live predictions actually did ---------------------------------------------------------------
#
# Each lead's first win probability predicted before its outcome was known (what a rep saw when the lead
# arrived) is kept; when the outcome arrives it is counted, per model version, into a few sums and a
# histogram of the probabilities rounded to REALISED_RESOLUTION. The sums are kept with atomic increments,
# so the figures cost a single small read whatever the number of leads, and an outcome that changes
# (a lost deal reopened and won) moves its lead from one side to the other.

REALISED_RESOLUTION = 1000  # probabilities rounded to 0.001: the ROC-AUC below is exact for the rounded values
REALISED_MIN_PER_CLASS = 1  # ROC-AUC needs one win and one loss; the alert waits for more (see the rules)


@dataclass(frozen=True)
class RealisedPerformance:
    """How one model's live predictions did against the outcomes known so far."""
    outcomes: int
    positives: int
    roc_auc: float | None  # None until both a win and a loss are known
    brier: float | None
    calibration: list  # (low, high, count, mean_predicted, observed_rate), as in Evaluation


def realised_increments(probability: float, label: int, sign: int = 1) -> dict:
    """What one lead's prediction and outcome add to its model's sums (sign -1 takes them away again)."""
    side = "positive" if label else "negative"
    bucket = int(round(min(max(probability, 0.0), 1.0) * REALISED_RESOLUTION))
    return {f"{side}s": sign, f"{side}_bins.{bucket}": sign,
            "squared_error": sign * (probability - label) ** 2}


def realised_performance(positive_bins: dict, negative_bins: dict, squared_error: float) -> RealisedPerformance:
    """The figures from the kept sums, each histogram bucket weighted by its leads: ROC-AUC (ties count
    half), Brier as the mean squared error, and the calibration table of Evaluation."""
    rows = [(label, int(bucket) / REALISED_RESOLUTION, int(leads))
            for label, histogram in ((1, positive_bins), (0, negative_bins))
            for bucket, leads in histogram.items() if int(leads)]
    if not rows:
        return RealisedPerformance(0, 0, None, None, [])
    labels, predicted, counts = np.array(rows, dtype=float).T
    outcomes, positives = int(counts.sum()), int((counts * labels).sum())
    roc_auc = float(roc_auc_score(labels, predicted, sample_weight=counts)) if 0 < positives < outcomes else None
    return RealisedPerformance(outcomes, positives, roc_auc, max(squared_error, 0.0) / outcomes,
                               calibration_table(labels, predicted, counts=counts))
