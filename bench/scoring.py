"""(viii) Scoring on a capture + scoring platform: lead_captured and lead_activity_recorded events scored
per second end to end (published as capture's relay would, counted once stored; against the raw
broker's consume rate), GetLeadScore p50/p99 (against plain grpcio's health check), and TrainWinModel
on the X Education export imported through capture (against the same training run in this process on
the same leads) and on 100,000 leads (against the 7,392)."""
import time
import uuid
from datetime import datetime, timezone

import pymongo
from leadflow.scoring.v1 import scoring_pb2

from bench.capture import SHARED_XEDUCATION, import_file
from bench.common import _wait, declare_sink, logs_dir, rss_mib, scaled, unary_profile
from services.cli.client import LeadflowClient
from services.devstack.supervisor import Platform

XEDUCATION_LEAKS = ["tags", "custom.lead_quality", "custom.last_activity", "custom.last_notable_activity",
                    "custom.lead_profile", "custom.asymmetrique_activity_index", "custom.asymmetrique_profile_index",
                    "custom.asymmetrique_activity_score", "custom.asymmetrique_profile_score", "custom.lead_number"]


def _handled(db, handler: str) -> int:
    """Events scoring has handled with ``handler`` (its processed-event markers; an indexed range)."""
    from services.common.store import PROCESSED_EVENTS
    return db[PROCESSED_EVENTS].count_documents({"_id": {"$gte": f"{handler}:", "$lt": f"{handler};"}})


def _wait_handled(db, handler: str, last_event: dict, before: int, count: int) -> None:
    """Wait until scoring has handled ``count`` more events with ``handler``, the last one published
    among them. The marker of that last event is polled (one read by id); the markers are counted only
    then. Counting them five times a second read the whole growing range each time and kept the
    single-process embedded store busy for about half of its time, slowing what it measured."""
    from services.common.store import PROCESSED_EVENTS
    markers = db[PROCESSED_EVENTS]
    _wait(lambda: markers.find_one({"_id": f"{handler}:{last_event['event_id']}"}, {"_id": 1}) is not None)
    _wait(lambda: _handled(db, handler) - before >= count)  # an event retried alone may end after the last


def bench_scoring(infra, table: str, admin_token: str, count: int) -> dict:
    from services.common.events import iso, make_event
    from services.common.settings import database_name
    from tests.support import EventPublisher
    declare_sink(infra.amqp_uri, "scoring")
    logs = logs_dir("scoring")
    stack = Platform({**infra.env(), "LEADFLOW_AUTH_TOKENS": table, "LOG_LEVEL": "WARNING"}, logs,
                     services=("capture", "scoring"), any_free_port=True).start()
    mongo = pymongo.MongoClient(infra.mongo_uri)
    db = mongo[database_name(infra.db_prefix, "scoring")]
    publish = EventPublisher(infra.amqp_uri)
    results = {}
    try:
        stack.wait_ready()
        admin = LeadflowClient(admin_token, stack.addresses())
        now = datetime.now(timezone.utc)
        leads = [{"lead_id": str(uuid.uuid4()), "email": f"b{i}@bench{i % 300}.example.com", "title": "CTO",
                  "company_size": 50 * (i % 40), "industry": ("software", "retail", "")[i % 3], "source": "referral",
                  "company_domain": f"bench{i % 300}.example.com", "phone_e164": "", "custom_fields": {},
                  "tags": [], "captured_at": iso(now)} for i in range(count)]
        ids = [lead["lead_id"] for lead in leads]
        before = _handled(db, "handle_lead_captured")
        started = time.perf_counter()
        for lead in leads:
            last = make_event("lead_captured", {"lead_id": lead["lead_id"]}, {"lead": lead})
            publish("capture", last)
        # Timed from the first publish: publishing overlaps with scoring, as with capture's relay.
        _wait_handled(db, "handle_lead_captured", last, before, count)
        seconds = time.perf_counter() - started
        scored = _handled(db, "handle_lead_captured") - before
        results["lead_captured"] = {"events": count, "scored": scored, "seconds": seconds, "per_s": scored / seconds}
        kinds = ("page_view", "pricing_page_view", "email_open", "demo_request")
        before = _handled(db, "handle_lead_activity_recorded")
        started = time.perf_counter()
        for i in range(count):
            activity_id = f"bench:{uuid.uuid4()}"
            last = make_event("lead_activity_recorded", {"lead_id": ids[i % len(ids)], "activity_id": activity_id},
                              {"type": kinds[i % 4], "url": "", "properties": {}, "activity_occurred_at": iso(now),
                               "visitor_id": "", "stitched": False})
            publish("capture", last)
        _wait_handled(db, "handle_lead_activity_recorded", last, before, count)
        seconds = time.perf_counter() - started
        results["lead_activity_recorded"] = {"events": count, "seconds": seconds, "per_s": count / seconds}
        results["get_lead_score"] = unary_profile(
            lambda r: admin.scoring.GetLeadScore(r, timeout=10),
            lambda i: scoring_pb2.GetLeadScoreRequest(lead_id=ids[i % len(ids)]), scaled(500), scaled(1000))
        if SHARED_XEDUCATION.exists():
            before = _handled(db, "handle_lead_captured")
            report, _ = import_file(admin, SHARED_XEDUCATION.read_bytes(), "xeducation", prefix="benchx:")
            waited = _wait(lambda: _handled(db, "handle_lead_captured") - before >= report.accepted)
            config = scoring_pb2.WinModelConfig(label_field="custom.converted", exclude=XEDUCATION_LEAKS)
            started = time.perf_counter()
            model = admin.scoring.TrainWinModel(scoring_pb2.TrainWinModelRequest(config=config), timeout=900).model
            rpc_seconds = time.perf_counter() - started
            results["win_model_xeducation"] = {
                "leads": report.accepted, "import_and_scoring_seconds": waited, "rpc_seconds": rpc_seconds,
                "training_seconds": model.training_seconds, "roc_auc": model.roc_auc,
                "baseline_roc_auc": model.baseline_roc_auc, "brier": model.brier,
                "in_process_seconds": in_process_training_seconds(db, config)}
            results["win_model_large"] = _train_at_size(db, admin, config, scaled(100_000), report.accepted)
        results["scoring_rss_mib"] = round(rss_mib(stack.processes[1].process.pid), 1)
        admin.close()
    finally:
        publish.close()
        mongo.close()
        stack.stop()
    return results


def _train_at_size(db, admin, config, size: int, imported: int) -> dict:
    """TrainWinModel on ``size`` labelled leads: the imported X Education leads and copies of them written
    straight into scoring's store (importing 100,000 rows through capture would take this section an
    hour). Timing only: copies in both parts of a fold make its ROC-AUC no measure of anything."""
    originals = list(db["lead_scores"].find({"lead.external_id": {"$gte": "benchx:", "$lt": "benchx;"}},
                                            {"_id": 0}))
    copies = [{**originals[i % len(originals)], "_id": f"benchcopy:{i}"} for i in range(max(0, size - imported))]
    for start in range(0, len(copies), 5000):
        db["lead_scores"].insert_many(copies[start:start + 5000], ordered=False)
    started = time.perf_counter()
    model = admin.scoring.TrainWinModel(scoring_pb2.TrainWinModelRequest(config=config, force=True),
                                        timeout=3600).model
    rpc_seconds = time.perf_counter() - started
    db["lead_scores"].delete_many({"_id": {"$gte": "benchcopy:", "$lt": "benchcopy;"}})
    return {"leads": model.examples, "rpc_seconds": rpc_seconds, "training_seconds": model.training_seconds}


def in_process_training_seconds(db, config) -> float:
    """The same training on the same leads in this process, without the service around it."""
    from collections import Counter

    from services.scoring import win_model
    from services.scoring.mappers import training_config_from_proto
    training = training_config_from_proto(config)
    examples = []
    for document in db["lead_scores"].find({"lead.external_id": {"$gte": "benchx:", "$lt": "benchx;"}}):
        label = win_model.label_of(document["lead"], "", training)
        if label is not None:
            counts = Counter(b["type"] for b in document.get("behaviour", []))
            examples.append(win_model.Example(document["lead"], counts, label, document["lead"].get("captured_at", "")))
    started = time.perf_counter()
    win_model.train(examples, training)
    return time.perf_counter() - started
