"""services.scoring.win_model on synthetic companies whose truth is known: features are found and
typed from the data, excluded fields are never read, the evaluation is honest, explanations point at
the values that matter, and a worse challenger is recognised."""
import random

import pytest

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


def test_evaluation_is_on_a_hold_out_with_a_baseline_and_a_calibration_table():
    model = win_model.train(company(), CONFIG)
    evaluation = model.evaluation
    assert (evaluation.examples, evaluation.train_examples, evaluation.holdout_examples) == (600, 450, 150)
    assert 0.7 < evaluation.roc_auc < 0.95 and evaluation.brier < 0.25
    assert sum(row[2] for row in evaluation.calibration) == 150
    assert all(row[0] <= row[3] <= row[1] for row in evaluation.calibration)  # mean predicted inside its bin


def test_a_leaking_field_makes_a_too_good_model_unless_it_is_excluded():
    leaky = company(leak=True)
    assert win_model.train(leaky, CONFIG).evaluation.roc_auc > 0.99
    honest = win_model.train(leaky, TrainingConfig(label_field="custom.won", exclude=("custom.rep_notes",)))
    assert "custom.rep_notes" not in {c.name for c in honest.spec.columns}
    assert honest.evaluation.roc_auc < 0.95


def test_time_holdout_tests_on_the_latest_leads():
    examples = company()
    model = win_model.train(examples, TrainingConfig(label_field="custom.won", holdout="time"))
    latest_quarter = sorted(e.captured_at for e in examples)[450:]
    assert sorted(e.captured_at for e in model.holdout) == latest_quarter


def test_factors_point_at_the_values_that_matter():
    model = win_model.train(company(), CONFIG)
    probability, factors = win_model.predict_with_factors(
        model, {"source": "referral", "country": "DE", "custom_fields": {"visits": "20", "colour": "red"}}, {})
    cold = win_model.predict(model, {"source": "cold", "custom_fields": {"visits": "0"}}, {})
    assert probability > 0.6 > cold
    assert factors[0].feature in ("source", "custom.visits") and factors[0].effect > 0
    assert all(abs(f.effect) >= 0.005 for f in factors)


def test_the_artefact_round_trips_without_its_hold_out():
    model = win_model.train(company(), CONFIG)
    again = win_model.from_bytes(model.to_bytes())
    lead = {"source": "fair", "custom_fields": {"visits": "7"}}
    assert win_model.predict(again, lead, {}) == pytest.approx(win_model.predict(model, lead, {}))
    assert again.holdout == [] and again.evaluation.roc_auc == model.evaluation.roc_auc


def test_a_worse_challenger_is_recognised_on_the_same_hold_out():
    good = win_model.train(company(), CONFIG)
    noise = win_model.train(company(), TrainingConfig(label_field="custom.won", fields=("custom.colour",),
                                                      use_behaviour=False))
    live_auc = win_model.auc_on(good, noise.holdout)
    assert win_model.is_worse(noise.evaluation, live_auc)
    assert not win_model.is_worse(good.evaluation, win_model.auc_on(noise, good.holdout))
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
