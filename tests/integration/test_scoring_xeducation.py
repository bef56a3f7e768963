"""The win model on a real company's history, judged as a rep meets it: three quarters of the X Education
lead export go in through capture's file import with their outcome, scoring learns from them through
TrainWinModel, then the last quarter is imported as new leads without their outcome and each one's win
probability is read from GetLeadScore. Those live predictions must rank the new leads at least as well
(within one split's noise) as a plain logistic regression and a plain gradient boosting fitted here,
independently, on the same three quarters of the CSV; and the cross-validated ROC-AUC the model
reported must be within 0.02 of what its live predictions achieved."""
import csv
import io
import uuid

import numpy as np
import pytest
from leadflow.capture.v1 import capture_pb2_grpc
from leadflow.common.v1 import common_pb2
from leadflow.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from services.capture.models import LeadDocument
from services.capture.service import CaptureService
from services.scoring.models import LeadScoreDocument
from tests.integration.test_capture_channels import import_file
from tests.integration.test_scoring_models import isolated
from tests.support import wait_until

# Written by sales after first contact (they leak the outcome), or scores computed later by another tool.
LEAKY_COLUMNS = ("Tags", "Lead Quality", "Last Activity", "Last Notable Activity", "Lead Profile",
                 "Asymmetrique Activity Index", "Asymmetrique Profile Index", "Asymmetrique Activity Score",
                 "Asymmetrique Profile Score")
IDENTIFIERS = ("Prospect ID", "Lead Number")
NUMERIC = ("TotalVisits", "Total Time Spent on Website", "Page Views Per Visit")
# The same columns as the fields capture's import makes of them.
LEAKY_FIELDS = ["tags", "custom.lead_quality", "custom.last_activity", "custom.last_notable_activity",
                "custom.lead_profile", "custom.asymmetrique_activity_index", "custom.asymmetrique_profile_index",
                "custom.asymmetrique_activity_score", "custom.asymmetrique_profile_score", "custom.lead_number"]


def as_csv(header: list, rows: list) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def baselines(train_rows: list, test_rows: list) -> dict:
    """ROC-AUC on the new leads of what anyone could fit on the same training rows in a few lines: the
    capture-time columns one-hot ("Select" is the form's empty answer), the counts as numbers."""
    categorical = [c for c in train_rows[0] if c not in (*LEAKY_COLUMNS, *IDENTIFIERS, *NUMERIC, "Converted")]

    def frame(rows):
        categories = [[(row[c] or "").strip() if (row[c] or "").strip() not in ("", "Select") else "(missing)"
                       for c in categorical] for row in rows]
        numbers = np.array([[float(row[c]) if (row[c] or "").strip() else np.nan for c in NUMERIC] for row in rows])
        return categories, numbers
    train_categories, train_numbers = frame(train_rows)
    test_categories, test_numbers = frame(test_rows)
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(train_categories)
    train_x = np.hstack([encoder.transform(train_categories), train_numbers])
    test_x = np.hstack([encoder.transform(test_categories), test_numbers])
    train_y = np.array([int(row["Converted"]) for row in train_rows])
    test_y = np.array([int(row["Converted"]) for row in test_rows])
    logistic = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=2000))
    boosting = HistGradientBoostingClassifier(random_state=0)
    return {name: float(roc_auc_score(test_y, model.fit(train_x, train_y).predict_proba(test_x)[:, 1]))
            for name, model in (("logistic_regression", logistic), ("gradient_boosting", boosting))}


@pytest.mark.needs_shared_data
@pytest.mark.timeout(600)
def test_live_win_probabilities_of_new_leads_rank_them_as_well_as_plain_baselines(run_service, infra, tokens, tap,
                                                                                    shared_data):
    with (shared_data / "xeducation-leads" / "train.csv").open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        header, rows = reader.fieldnames, list(reader)
    known, new = train_test_split(rows, test_size=0.25, stratify=[row["Converted"] for row in rows], random_state=11)
    scoring = isolated(run_service, infra).grpc(scoring_pb2_grpc.ScoringServiceStub, tokens["admin"])
    tap("capture", "#")
    capture = run_service(CaptureService)
    capture.api = capture.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["admin"])
    prefix = f"xeducation-{uuid.uuid4().hex[:8]}:"

    history = import_file(capture, as_csv(header, known), "history.csv", external_id_prefix=prefix,
                          attribution=common_pb2.Attribution(source="xeducation"))
    assert history.accepted > 5400
    assert wait_until(lambda: LeadScoreDocument.objects(scored_at__ne=None).count() >= history.accepted,
                      timeout=400, interval=1.0)
    trained = scoring.TrainWinModel(scoring_pb2.TrainWinModelRequest(config=scoring_pb2.WinModelConfig(
        label_field="custom.converted", exclude=LEAKY_FIELDS))).model
    assert trained.status == "live" and trained.examples == history.accepted and trained.folds == 5
    assert not set(trained.features) & set(LEAKY_FIELDS)
    assert trained.calibration_method in ("none", "sigmoid", "isotonic")
    assert trained.brier < 0.2 and trained.roc_auc > trained.baseline_roc_auc

    # The new leads arrive without their outcome; each is scored by the live model as it is captured.
    unlabelled = [{column: value for column, value in row.items() if column != "Converted"} for row in new]
    arrivals = import_file(capture, as_csv([c for c in header if c != "Converted"], unlabelled), "new.csv",
                           external_id_prefix=prefix, attribution=common_pb2.Attribution(source="xeducation"))
    assert arrivals.accepted == len(new)
    lead_of = {lead.external_id: lead.id for lead in LeadDocument.objects(external_id__startswith=prefix)
               .only("external_id", "id")}
    new_ids = [lead_of[prefix + row["Prospect ID"]] for row in new]
    assert wait_until(lambda: LeadScoreDocument.objects(id__in=new_ids, win_model_version=trained.version).count()
                      == len(new_ids), timeout=400, interval=1.0)
    live = [scoring.GetLeadScore(scoring_pb2.GetLeadScoreRequest(lead_id=lead_id)).score.win_probability
            for lead_id in new_ids]
    outcomes = [int(row["Converted"]) for row in new]
    live_auc = roc_auc_score(outcomes, live)

    plain = baselines(known, new)
    print(f"live ROC-AUC {live_auc:.3f}, reported {trained.roc_auc:.3f} ± {trained.roc_auc_sd:.3f} "
          f"({trained.calibration_method}); baselines {plain}")
    # One split of 1,848 new leads: the same model's ROC-AUC moves by a few thousandths from one split to
    # another (its cross-validation folds spread by about 0.014), so "at least as well" allows 0.005.
    assert live_auc >= max(plain.values()) - 0.005, (live_auc, plain)
    assert abs(trained.roc_auc - live_auc) <= 0.02, (trained.roc_auc, live_auc)
