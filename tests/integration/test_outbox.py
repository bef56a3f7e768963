"""The transactional outbox: an event whose state was committed is published even when the process
that wrote it died before publishing, and is kept (not dropped) while nobody listens yet."""
import uuid

import pymongo
from leadflow.capture.v1 import capture_pb2, capture_pb2_grpc
from leadflow.common.v1 import common_pb2

from services.capture.service import CaptureService
from services.common.events import make_event, utcnow
from services.common.settings import database_name
from services.common.store import EPOCH, OUTBOX
from tests.support import EventTap, wait_until


def outbox(infra):
    return pymongo.MongoClient(infra.mongo_uri)[database_name(infra.db_prefix, "capture")][OUTBOX]


def test_events_left_behind_by_a_crashed_process_are_published_on_restart(run_service, tap, infra):
    emitted = tap("capture", "lead_captured")
    # What a process that committed and then died leaves behind: the entry, unpublished.
    lead_id = str(uuid.uuid4())
    event = make_event("lead_captured", {"lead_id": lead_id}, {"lead": {"lead_id": lead_id, "source": "web"}})
    run_service(CaptureService).container.stop()  # creates the database and its indexes
    outbox(infra).insert_one({"_id": event["event_id"], "event_type": "lead_captured", "payload": event,
                         "created_at": utcnow(), "lease_until": EPOCH})

    run_service(CaptureService)

    [published] = emitted.wait_for(lambda e: e["event_id"] == event["event_id"])
    assert published == event
    assert wait_until(lambda: outbox(infra).count_documents({"_id": event["event_id"]}) == 0)


def test_an_event_nobody_listens_to_yet_waits_in_the_outbox(run_service, tokens, infra, empty_broker):
    service = run_service(CaptureService, AMQP_URI=empty_broker)
    capture = service.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["integration"])
    source = f"quiet-{uuid.uuid4().hex[:6]}"
    # No consumer of lead_captured has declared its queue on this broker: it would drop the message.
    lead = capture.SubmitLead(capture_pb2.SubmitLeadRequest(lead=capture_pb2.LeadInput(
        email="first@quiet.example", attribution=common_pb2.Attribution(source=source)))).lead
    assert wait_until(lambda: outbox(infra).count_documents({"events.lead_id": lead.lead_id}) == 1)

    emitted = EventTap(empty_broker, "capture", ("lead_captured",))  # a consumer appears

    [published] = emitted.wait_for(lambda e: e["lead_id"] == lead.lead_id, timeout=15)
    assert published["lead"]["source"] == source
    assert wait_until(lambda: outbox(infra).count_documents({"events.lead_id": lead.lead_id}) == 0)
    emitted.close()


def test_a_transaction_writes_one_outbox_document_holding_its_events_in_order(run_service, tokens, infra,
                                                                              empty_broker):
    """An import batch publishes one lead_captured per new lead: one outbox document carries them all,
    in the order they were published, and once a consumer is there they leave in that order and
    the document goes with one delete."""
    service = run_service(CaptureService, AMQP_URI=empty_broker)  # nobody listens: the document stays
    capture = service.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["integration"])
    source = f"fair-{uuid.uuid4().hex[:6]}"
    rows = "Email,Company\n" + "".join(f"visitor{n}@{source}.example,Fair {n}\n" for n in range(25))
    report = capture.ImportLeadFile(iter([
        capture_pb2.ImportLeadFileRequest(header=capture_pb2.ImportHeader(
            filename="fair.csv", attribution=common_pb2.Attribution(source=source))),
        capture_pb2.ImportLeadFileRequest(chunk=rows.encode())]))
    assert report.accepted == 25

    [document] = wait_until(lambda: list(outbox(infra).find({"events.lead.source": source})))
    emails = [event["lead"]["email"] for event in document["events"]]
    assert emails == [f"visitor{n}@{source}.example" for n in range(25)]
    assert {event["event_type"] for event in document["events"]} == {"lead_captured"}

    emitted = EventTap(empty_broker, "capture", ("lead_captured",))
    published = emitted.wait_for(lambda e: e["lead"]["source"] == source and e["lead"]["email"].startswith(
        "visitor24@"), timeout=15)
    assert published
    ours = [e["lead"]["email"] for e in emitted.received if e["lead"]["source"] == source]
    assert ours == emails
    assert wait_until(lambda: outbox(infra).count_documents({"_id": document["_id"]}) == 0)
    emitted.close()
