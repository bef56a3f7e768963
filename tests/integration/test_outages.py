"""A store outage delays work; it never turns into lost or dead-lettered events, and callers are
told to retry."""
import uuid

import pytest
from grpc import StatusCode
from leadflow.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from prometheus_client import REGISTRY

from services.cli import dead_letters
from services.devstack.infrastructure import EmbeddedMongo, free_port
from services.reporting.models import LeadProgressDocument
from services.reporting.service import ReportingService
from services.scoring.models import LeadScoreDocument
from services.scoring.service import ScoringService
from tests.integration.test_scoring_service import captured_event
from tests.support import new_event, wait_until


def retries(service: str = "reporting") -> float:
    return REGISTRY.get_sample_value("leadflow_events_handled_total", {
        "service": service, "handler": "handle_lead_captured", "outcome": "retried"}) or 0.0


@pytest.fixture
def own_store(tmp_path):
    """A store this test may take down. Asked for before ``run_service``, it is stopped after the
    service is: a service stopping against a store that is down waits out a server selection for each
    of its timers and threads."""
    mongo = EmbeddedMongo(tmp_path / "data", free_port(), tmp_path / "secantusdb.log").start()
    yield mongo
    mongo.stop()


@pytest.mark.timeout(180)  # each try waits out pymongo's 5 s server selection
def test_events_wait_out_a_store_outage_instead_of_being_dead_lettered(own_store, run_service, tokens, publish,
                                                                       infra):
    mongo = own_store
    service = run_service(ReportingService, MONGODB_URI=mongo.uri, EVENT_MAX_ATTEMPTS=2)
    lead_id = str(uuid.uuid4())
    retries_before = retries()

    mongo.stop()
    event = publish("capture", new_event("lead_captured", {"lead_id": lead_id},
                                         lead={"lead_id": lead_id, "source": "outage-test"}))
    # More failed tries than EVENT_MAX_ATTEMPTS allows a bad event...
    assert wait_until(lambda: retries() >= retries_before + 3, timeout=60)
    reporting = service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["admin"])
    assert reporting.error("GetFunnel", reporting_pb2.GetFunnelRequest()).code == StatusCode.UNAVAILABLE
    # ...yet nothing was dead-lettered, and once the store is back the event is handled.
    assert not [letter for letter in dead_letters.peek(infra.amqp_uri) if event["event_id"] in letter["body"]]
    mongo.start()

    assert wait_until(lambda: LeadProgressDocument.objects(id=lead_id, source="outage-test").count() == 1,
                      timeout=60)


@pytest.mark.timeout(120)
def test_an_event_waits_for_a_writer_that_died_in_its_transaction_instead_of_being_dead_lettered(
        run_service, publish, infra):
    """A killed replica's open transaction holds its documents until the server ends it (60 s):
    every try meets a write conflict, and none of them may count as a failed attempt."""
    run_service(ScoringService, EVENT_MAX_ATTEMPTS=2)
    event = captured_event()
    lead_id = event["lead_id"]
    scores = LeadScoreDocument._get_collection()
    dead_writer = scores.database.client.start_session()
    dead_writer.start_transaction()
    try:
        scores.insert_one({"_id": lead_id, "revision": 0}, session=dead_writer)
        retries_before = retries("scoring")

        publish("capture", event)
        assert wait_until(lambda: retries("scoring") >= retries_before + 3, timeout=90)
        assert not [letter for letter in dead_letters.peek(infra.amqp_uri) if event["event_id"] in letter["body"]]
        assert LeadScoreDocument.objects(id=lead_id).count() == 0
    finally:
        dead_writer.abort_transaction()  # what the server does once the transaction's lifetime is up
        dead_writer.end_session()

    assert wait_until(lambda: LeadScoreDocument.objects(id=lead_id, total=95).count() == 1, timeout=30)
