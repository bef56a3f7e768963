"""Capture over its real gRPC entrypoint, storing in the Mongo wire protocol, emitting on RabbitMQ."""
import json
import random
import uuid
import urllib.request

from grpc import StatusCode
from grpc_health.v1 import health_pb2, health_pb2_grpc
from leadflow.capture.v1 import capture_pb2, capture_pb2_grpc
from leadflow.common.v1 import common_pb2

from services.capture.models import LeadDocument
from services.capture.service import CaptureService
from tests.support import violations_of


def lead_request(idempotency_key: str = "", **overrides) -> capture_pb2.SubmitLeadRequest:
    """A lead of its own: capture merges submissions of the same email or phone into one lead."""
    unique = random.randrange(10_000_000, 99_999_999)
    fields = dict(email=f"Li.Na.{unique}@Haier-Robotics.CN", phone=f"138 {unique}", country="cn", first_name=" Na ",
                  last_name="Li", company="Haier  Robotics", title="CTO", industry="Manufacturing",
                  company_size=1200, attribution=common_pb2.Attribution(source="Demo_Request", campaign="Spring"))
    fields.update(overrides)
    return capture_pb2.SubmitLeadRequest(lead=capture_pb2.LeadInput(**fields), idempotency_key=idempotency_key)


def test_submitted_lead_is_normalised_stored_and_announced(run_service, tokens, tap):
    service = run_service(CaptureService)
    captured = tap("capture", "lead_captured")
    capture = service.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["integration"])

    response = capture.SubmitLead(lead_request(email="Li.Na.Normalised@Haier-Robotics.CN", phone="138 0013 8000"))

    lead = response.lead
    assert response.created
    assert (lead.email, lead.phone_e164, lead.country, lead.company, lead.company_domain, lead.first_name) == \
        ("li.na.normalised@haier-robotics.cn", "+8613800138000", "CN", "Haier Robotics", "haier-robotics.cn", "Na")
    assert lead.attribution.source == "demo_request"
    assert capture.GetLead(capture_pb2.GetLeadRequest(lead_id=lead.lead_id)).lead == lead

    [event] = captured.wait_for(lambda e: e["lead_id"] == lead.lead_id)
    assert event["event_type"] == "lead_captured" and event["lead_id"] == lead.lead_id
    assert event["schema_version"] == 1 and event["event_id"] and event["occurred_at"].endswith("Z")
    assert event["lead"]["email"] == "li.na.normalised@haier-robotics.cn" and event["lead"]["company_size"] == 1200


def test_retry_with_same_idempotency_key_creates_nothing_new(run_service, tokens, tap):
    service = run_service(CaptureService)
    captured = tap("capture", "lead_captured")
    capture = service.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["integration"])

    first = capture.SubmitLead(lead_request("order-4711"))
    second = capture.SubmitLead(lead_request("order-4711", first_name="Changed"))

    assert first.created and not second.created
    assert second.lead.lead_id == first.lead.lead_id and second.lead.first_name == "Na"
    assert LeadDocument.objects(id=first.lead.lead_id).count() == 1
    assert len([e for e in captured.settle() if e["lead_id"] == first.lead.lead_id]) == 1


def test_invalid_lead_names_every_bad_field_and_stores_nothing(run_service, tokens, tap):
    service = run_service(CaptureService)
    captured = tap("capture", "lead_captured")
    capture = service.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["integration"])
    before = LeadDocument.objects.count()

    error = capture.error("SubmitLead", lead_request(
        email="not-an-email", phone="12", country="XX", company_size=-3,
        attribution=common_pb2.Attribution(source="")))

    assert error.code == StatusCode.INVALID_ARGUMENT
    assert set(violations_of(error.status)) == {
        "lead.email", "lead.phone", "lead.country", "lead.company_size", "lead.attribution.source"}
    assert LeadDocument.objects.count() == before
    assert captured.settle(0.3) == []


def test_oversized_fields_are_rejected_by_name(run_service, tokens):
    service = run_service(CaptureService)
    capture = service.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["integration"])

    error = capture.error("SubmitLead", lead_request(
        company="x" * 100_000, custom_fields={f"field{i}": "v" for i in range(60)}, idempotency_key="k" * 500))

    assert error.code == StatusCode.INVALID_ARGUMENT
    assert "idempotency_key" in violations_of(error.status)
    error = capture.error("SubmitLead", lead_request(
        company="x" * 100_000, custom_fields={f"field{i}": "v" for i in range(60)}))
    assert {"lead.company", "lead.custom_fields"} <= set(violations_of(error.status))


def test_missing_contact_data_is_named(run_service, tokens):
    service = run_service(CaptureService)
    capture = service.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["integration"])

    error = capture.error("SubmitLead", lead_request(email="", phone=""))

    assert error.code == StatusCode.INVALID_ARGUMENT
    assert violations_of(error.status) == {"lead.email": "an email, a phone or an external id is required"}


def test_calls_without_a_valid_token_or_role_are_refused(run_service, tokens):
    service = run_service(CaptureService)
    capture = service.grpc(capture_pb2_grpc.CaptureServiceStub)
    before = LeadDocument.objects.count()

    assert capture.error("SubmitLead", lead_request(), token=None).code == StatusCode.UNAUTHENTICATED
    assert capture.error("SubmitLead", lead_request(), token="forged").code == StatusCode.UNAUTHENTICATED
    assert capture.error("SubmitLead", lead_request(), token=tokens["rep"]).code == StatusCode.PERMISSION_DENIED
    assert LeadDocument.objects.count() == before


def test_health_ready_and_metrics_endpoints(run_service, tokens):
    service = run_service(CaptureService)
    capture = service.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["integration"])
    capture.SubmitLead(lead_request())

    health = service.grpc(health_pb2_grpc.HealthStub)
    assert health.Check(health_pb2.HealthCheckRequest(), token=None).status == health_pb2.HealthCheckResponse.SERVING
    base = f"http://127.0.0.1:{service.http_port}"
    with urllib.request.urlopen(f"{base}/readyz") as response:
        assert json.loads(response.read()) == {"status": "ready"}
    with urllib.request.urlopen(f"{base}/metrics") as response:
        text = response.read().decode()
    assert 'leadflow_grpc_requests_total{code="OK",method="SubmitLead",service="capture"}' in text
    assert 'leadflow_capture_leads_captured_total{source="demo_request"}' in text


def test_calls_during_a_graceful_stop_are_unavailable_so_clients_retry_elsewhere(run_service, tokens):
    from services.common.rpc import LeadflowGrpc
    service = run_service(CaptureService)
    capture = service.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["integration"])
    before = LeadDocument.objects.count()

    # The first step of a container's stop: its entrypoints stop while the server still accepts.
    for entrypoint in service.container.entrypoints:
        if isinstance(entrypoint, LeadflowGrpc):
            entrypoint.stop()

    error = capture.error("SubmitLead", lead_request())
    assert error.code == StatusCode.UNAVAILABLE
    assert LeadDocument.objects.count() == before


def test_the_same_person_captured_again_is_merged_into_one_lead(run_service, tokens, tap):
    from services.capture.models import ContactKey
    service = run_service(CaptureService)
    emitted = tap("capture")
    capture = service.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["integration"])
    email = f"wang.{uuid.uuid4().hex[:6]}@haier-robotics.cn"

    first = capture.SubmitLead(lead_request(email=email, phone="", title="", company_size=0,
                                            attribution=common_pb2.Attribution(source="webinar")))
    again = capture.SubmitLead(lead_request(email=email.upper(), phone="+86 138 0013 8999", title="CTO",
                                            attribution=common_pb2.Attribution(source="google")))
    by_phone = capture.SubmitLead(lead_request(email="", phone="13800138999", country="CN",
                                               attribution=common_pb2.Attribution(source="event")))

    assert first.created and not first.merged
    assert (again.created, again.merged, by_phone.merged) == (False, True, True)
    assert again.lead.lead_id == by_phone.lead.lead_id == first.lead.lead_id
    assert (again.lead.title, again.lead.phone_e164) == ("CTO", "+8613800138999")
    assert again.lead.attribution.source == "webinar"  # first touch
    document = LeadDocument.objects(id=first.lead.lead_id).first()
    assert [t["source"] for t in document.touches] == ["webinar", "google", "event"]
    assert ContactKey.objects(lead_id=first.lead.lead_id).count() == 2
    # Other tests' unroutable events may arrive too, once this tap gives them a queue.
    emitted.wait_for(lambda e: e["lead_id"] == first.lead.lead_id and e.get("touch", {}).get("source") == "event")
    events = [e for e in emitted.settle(0.3) if e["lead_id"] == first.lead.lead_id]
    assert [e["event_type"] for e in events] == ["lead_captured", "lead_merged", "lead_merged"]
    assert events[2]["touch"]["source"] == "event" and events[2]["lead"]["title"] == "CTO"


def test_simultaneous_captures_of_one_email_make_one_lead(run_service, tokens):
    import eventlet
    service = run_service(CaptureService)
    capture = service.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["integration"])
    email = f"rush.{uuid.uuid4().hex[:6]}@acme.example.com"

    pool = eventlet.GreenPool(8)
    responses = list(pool.imap(lambda i: capture.SubmitLead(lead_request(
        email=email, phone="", attribution=common_pb2.Attribution(source=f"channel{i}"))), range(8)))

    assert len({r.lead.lead_id for r in responses}) == 1
    assert sum(r.created for r in responses) == 1 and sum(r.merged for r in responses) == 7
    assert LeadDocument.objects(email=email).count() == 1
    assert len(LeadDocument.objects(email=email).first().touches) == 8
