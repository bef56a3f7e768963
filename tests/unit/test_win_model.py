"""services.scoring.win_model on synthetic companies whose truth is known: features are found and
typed from the data, excluded fields are never read, the evaluation is cross-validated with baselines
on the same folds and a calibration that keeps the ranking, the live model is refit on every lead,
explanations point at the values that matter, and a worse challenger is recognised on the same folds."""
import random

import numpy as np

import pytest
from sklearn.metrics import roc_auc_score

from services.common.errors import FailedPrecondition, InvalidArgument
from services.scoring import win_model
from services.scoring.win_model import Example, TrainingConfig


def company(n: int = 600, seed: int = 3, leak: bool = False) -> list:
    """Wins depend on source and on a numeric custom field; 'colour' is noise; 'rep_notes' (if leak)
    is written after the outcome and gives it away."""
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        source = rng.choice(["referral", "ads", "fair", "cold"])
        visits = rng.randint(0, 20)
        chance = {"referral": 0.6, "fair": 0.4, "ads": 0.25, "cold": 0.05}[source] + visits / 60
        label = int(rng.random() < chance)
        custom = {"visits": str(visits), "colour": rng.choice(["red", "green", "blue"]),
                  "won": "yes" if label else "no"}
        if leak:
            custom["rep_notes"] = "signed" if label else "no answer"
        examples.append(Example({"source": source, "country": rng.choice(["DE", "CN"]), "custom_fields": custom,
                                 "tags": ["channel:form"]}, {"demo_request": int(rng.random() < 0.1)}, label,
                                f"2026-01-{1 + i % 28:02d}T00:00:00Z"))
    return examples


CONFIG = TrainingConfig(label_field="custom.won")


def test_features_are_found_and_typed_from_the_data_and_the_label_is_never_one():
    model = win_model.train(company(), CONFIG)
    kinds = {c.name: c.kind for c in model.spec.columns}
    assert kinds["source"] == "categorical" and kinds["custom.visits"] == "numeric"
    assert kinds["custom.colour"] == "categorical" and kinds["behaviour.demo_request"] == "numeric"
    assert "custom.won" not in kinds and "tags" not in kinds  # the channel tag is not a feature


def true_chance(example: Example) -> float:
    """How ``company`` drew the outcome: the best ranking any model could reach."""
    source_chance = {"referral": 0.6, "fair": 0.4, "ads": 0.25, "cold": 0.05}[example.lead["source"]]
    return source_chance + int(example.lead["custom_fields"]["visits"]) / 60


def test_evaluation_is_cross_validated_with_its_spread_baselines_and_a_calibration_table():
    examples = company()
    evaluation = win_model.train(examples, CONFIG).evaluation
    assert (evaluation.examples, evaluation.train_examples, evaluation.holdout_examples, evaluation.folds) == \
        (600, 600, 600, 5)  # every lead predicted once out of fold; the live model fit on all of them
    best = roc_auc_score([e.label for e in examples], [true_chance(e) for e in examples])
    assert best - 0.05 < evaluation.roc_auc <= best + 0.02 and evaluation.brier < 0.25
    assert 0 < evaluation.roc_auc_sd < 0.1 and 0 < evaluation.brier_sd < 0.05
    assert 0.6 < evaluation.logistic_roc_auc < 0.95 and 0.5 < evaluation.baseline_roc_auc < 0.95
    assert sum(row[2] for row in evaluation.calibration) == 600
    assert all(row[0] <= row[3] <= row[1] for row in evaluation.calibration)  # mean predicted inside its bin


def interactions(n: int = 1500, seed: int = 5) -> list:
    """Wins come from combinations (a referral from China, an ad seen in Germany): no straight line
    through the one-hot columns separates them, trees do."""
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        source, country = rng.choice(["referral", "ads"]), rng.choice(["DE", "CN"])
        label = int(rng.random() < (0.8 if (source == "referral") == (country == "CN") else 0.15))
        examples.append(Example({"source": source, "country": country,
                                 "custom_fields": {"won": "yes" if label else "no"}}, {}, label,
                                f"2026-01-{1 + i % 28:02d}T00:00:00Z"))
    return examples


def test_the_model_kind_is_the_one_that_ranks_the_folds_better():
    simple = win_model.train(company(), CONFIG).evaluation  # 600 leads, effects that add up
    assert simple.model_kind == "logistic_regression" and simple.roc_auc == simple.logistic_roc_auc
    combined = win_model.train(interactions(), CONFIG).evaluation
    assert combined.model_kind == "gradient_boosting" and combined.roc_auc > combined.logistic_roc_auc + 0.1


def test_the_calibration_chosen_has_the_best_brier_of_those_keeping_the_ranking():
    evaluation = win_model.train(interactions(), CONFIG).evaluation
    candidates = {method: (auc, brier) for method, auc, brier in evaluation.calibration_candidates}
    assert set(candidates) == {"none", "sigmoid", "isotonic"}
    keeping = {m: v for m, v in candidates.items() if v[0] >= candidates["none"][0] - 0.002}
    assert evaluation.calibration_method == min(keeping, key=lambda m: keeping[m][1])
    assert (evaluation.roc_auc, evaluation.brier) == pytest.approx(candidates[evaluation.calibration_method])


def test_live_scoring_reads_a_lead_as_training_read_it():
    examples = company()
    model = win_model.train(examples, CONFIG)
    # The training frame, built as training builds it: the live model (refit on every lead) reads all of it.
    matrix = win_model.encode(model.spec, [win_model.raw_features(e.lead, e.behaviour_counts, CONFIG)
                                           for e in examples])
    live = win_model.predict_many(model, [(e.lead, e.behaviour_counts) for e in examples])
    assert live == pytest.approx(list(model.estimator.predict_proba(matrix)[:, 1]), abs=1e-12)


def test_a_leaking_field_makes_a_too_good_model_unless_it_is_excluded():
    leaky = company(leak=True)
    assert win_model.train(leaky, CONFIG).evaluation.roc_auc > 0.99
    honest = win_model.train(leaky, TrainingConfig(label_field="custom.won", exclude=("custom.rep_notes",)))
    assert "custom.rep_notes" not in {c.name for c in honest.spec.columns}
    assert honest.evaluation.roc_auc < 0.95


def test_time_ordered_folds_train_on_earlier_leads_and_test_on_later_ones():
    examples = company()
    config = TrainingConfig(label_field="custom.won", holdout="time")
    model = win_model.train(examples, config)
    for train_index, test_index in win_model._folds(examples, config):
        assert max(examples[i].captured_at for i in train_index) <= min(examples[i].captured_at for i in test_index)
    assert model.evaluation.holdout == "time" and model.evaluation.holdout_examples == 500  # the first block is
    # never tested: nothing is earlier to learn it from


def test_factors_point_at_the_values_that_matter():
    model = win_model.train(company(), CONFIG)
    probability, factors = win_model.predict_with_factors(
        model, {"source": "referral", "country": "DE", "custom_fields": {"visits": "20", "colour": "red"}}, {})
    cold = win_model.predict(model, {"source": "cold", "custom_fields": {"visits": "0"}}, {})
    assert probability > 0.6 > cold
    assert factors[0].feature in ("source", "custom.visits") and factors[0].effect > 0
    assert all(abs(f.effect) >= 0.005 for f in factors)


def test_the_artefact_round_trips():
    model = win_model.train(company(), CONFIG)
    again = win_model.from_bytes(model.to_bytes())
    lead = {"source": "fair", "custom_fields": {"visits": "7"}}
    assert win_model.predict(again, lead, {}) == pytest.approx(win_model.predict(model, lead, {}))
    assert again.evaluation.roc_auc == model.evaluation.roc_auc


def test_a_worse_challenger_is_recognised_on_the_same_folds():
    examples = company()
    good = win_model.train(examples, CONFIG)
    noise_config = TrainingConfig(label_field="custom.won", fields=("custom.colour",), use_behaviour=False)
    noise = win_model.train(examples, noise_config)
    live_auc = win_model.challenge(noise, good.config, examples)
    assert live_auc == pytest.approx(good.evaluation.roc_auc)  # the same settings, the same folds
    assert win_model.is_worse(noise.evaluation, live_auc)
    assert not win_model.is_worse(good.evaluation, win_model.challenge(good, noise_config, examples))
    assert win_model.challenge(good, CONFIG, examples) is None  # a retrain of the live settings
    assert not win_model.is_worse(noise.evaluation, None)  # nothing live: the first model goes live


def test_too_few_labelled_leads_is_a_clear_precondition():
    with pytest.raises(FailedPrecondition, match="at least 100"):
        win_model.train(company(50), CONFIG)


def test_labels_from_outcomes_or_custom_fields():
    config = TrainingConfig(label_field="custom.converted", positive_values=("1", "yes"))
    assert win_model.label_of({"custom_fields": {"converted": "Yes"}}, "", config) == 1
    assert win_model.label_of({"custom_fields": {"converted": "0"}}, "", config) == 0
    assert win_model.label_of({"custom_fields": {}}, "won", config) is None
    assert win_model.label_of({}, "lost", TrainingConfig()) == 0
    assert win_model.label_of({}, "", TrainingConfig()) is None


def test_bad_configurations_name_their_fields():
    with pytest.raises(InvalidArgument) as raised:
        win_model.validate_config(TrainingConfig(label_field="won", fields=("shoe_size", "custom.x"),
                                                 holdout="random", holdout_fraction=0.9))
    assert {v.field for v in raised.value.violations} == {
        "config.label_field", "config.fields[0]", "config.holdout", "config.holdout_fraction"}


def _realised(pairs):
    """The sums the store keeps for (probability, label) pairs, through the same increments."""
    sums = {"positive_bins": {}, "negative_bins": {}, "squared_error": 0.0}
    for probability, label, sign in pairs:
        for key, amount in win_model.realised_increments(probability, label, sign).items():
            if "." in key:
                bins, bucket = key.split(".")
                sums[bins][bucket] = sums[bins].get(bucket, 0) + amount
            elif key == "squared_error":
                sums[key] += amount
    return win_model.realised_performance(sums["positive_bins"], sums["negative_bins"], sums["squared_error"])


def test_realised_performance_is_the_roc_auc_and_brier_of_the_kept_predictions():
    rng = random.Random(5)
    pairs = [(p := rng.random(), int(rng.random() < p)) for _ in range(2000)]
    realised = _realised([(p, label, 1) for p, label in pairs])
    labels, predicted = [label for _, label in pairs], [p for p, _ in pairs]
    assert realised.outcomes == 2000 and realised.positives == sum(labels)
    # Exact for the probabilities rounded to 0.001, which moves it by far less than a split's noise.
    assert realised.roc_auc == pytest.approx(roc_auc_score(labels, [round(p, 3) for p in predicted]), abs=1e-12)
    assert realised.roc_auc == pytest.approx(roc_auc_score(labels, predicted), abs=2e-3)
    assert realised.brier == pytest.approx(sum((p - y) ** 2 for p, y in pairs) / 2000, rel=1e-9)
    assert sum(row[2] for row in realised.calibration) == 2000
    assert [row[:3] for row in realised.calibration] == [row[:3] for row in win_model.calibration_table(
        np.array(labels), np.array([round(p, 3) for p in predicted]))]


def test_an_outcome_that_changes_moves_its_lead_and_unknown_figures_stay_unknown():
    assert _realised([]).roc_auc is None and _realised([]).brier is None
    only_wins = _realised([(0.7, 1, 1), (0.2, 1, 1)])
    assert only_wins.outcomes == 2 and only_wins.roc_auc is None and only_wins.brier == pytest.approx(
        (0.09 + 0.64) / 2)
    # A lost deal reopened and won: its lead leaves the losses and joins the wins.
    moved = _realised([(0.9, 1, 1), (0.1, 0, 1), (0.8, 0, 1), (0.8, 0, -1), (0.8, 1, 1)])
    assert (moved.outcomes, moved.positives, moved.roc_auc) == (3, 2, 1.0)
    assert moved.brier == pytest.approx((0.01 + 0.01 + 0.04) / 3)
