"""The win model on a real company's history: the X Education lead export goes in through capture's
file import, scoring learns from it through TrainWinModel, and the hold-out ROC-AUC it reports must
beat the customary CRM baseline — a naive Bayes over the categorical fields — computed here,
independently, from the CSV."""
import csv
import io
import uuid

import numpy as np
import pytest
from leadflow.capture.v1 import capture_pb2_grpc
from leadflow.common.v1 import common_pb2
from leadflow.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import CategoricalNB
from sklearn.preprocessing import OrdinalEncoder

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


def naive_bayes_baseline(content: bytes) -> float:
    """Odoo-style naive Bayes on every capture-time categorical column, stratified 25 % hold-out."""
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8"))))
    columns = [c for c in rows[0] if c and c not in (*LEAKY_COLUMNS, *IDENTIFIERS, *NUMERIC, "Converted")]
    values = [[(row[c] or "").strip() if (row[c] or "").strip() not in ("", "Select") else "(missing)"
               for c in columns] for row in rows]
    labels = np.array([int(row["Converted"]) for row in rows])
    train_x, test_x, train_y, test_y = train_test_split(values, labels, test_size=0.25, stratify=labels,
                                                        random_state=0)
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1).fit(train_x)
    encoded_test = encoder.transform(test_x)
    encoded_test[encoded_test < 0] = 0
    model = CategoricalNB(min_categories=[len(c) for c in encoder.categories_]).fit(encoder.transform(train_x),
                                                                                  train_y)
    return float(roc_auc_score(test_y, model.predict_proba(encoded_test)[:, 1]))


@pytest.mark.needs_shared_data
@pytest.mark.timeout(600)
def test_win_model_learned_from_the_xeducation_export_beats_naive_bayes(run_service, infra, tokens, tap,
                                                                         shared_data):
    content = (shared_data / "xeducation-leads" / "train.csv").read_bytes()
    scoring = isolated(run_service, infra).grpc(scoring_pb2_grpc.ScoringServiceStub, tokens["admin"])
    tap("capture", "#")
    capture = run_service(CaptureService)
    capture.api = capture.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["admin"])
    prefix = f"xeducation-{uuid.uuid4().hex[:8]}:"
    report = import_file(capture, content, "train.csv", external_id_prefix=prefix,
                         attribution=common_pb2.Attribution(source="xeducation"))
    assert report.accepted > 7300

    def scored() -> int:
        return LeadScoreDocument.objects(scored_at__ne=None).count()
    assert wait_until(lambda: scored() >= report.accepted, timeout=400, interval=1.0), f"{scored()} scored"

    trained = scoring.TrainWinModel(scoring_pb2.TrainWinModelRequest(config=scoring_pb2.WinModelConfig(
        label_field="custom.converted", exclude=LEAKY_FIELDS))).model

    baseline = naive_bayes_baseline(content)
    assert trained.status == "live" and trained.examples == report.accepted
    assert not set(trained.features) & set(LEAKY_FIELDS)
    assert trained.roc_auc > baseline + 0.03, (trained.roc_auc, baseline)
    assert trained.brier < 0.2
    # Calibrated: in the well-filled bins the predicted and the observed rates are close.
    assert all(abs(b.mean_predicted - b.observed_rate) < 0.15 for b in trained.calibration if b.leads >= 100)
