"""The gateway's transcoding rules, pure: JSON to request messages, gRPC status to HTTP, the OpenAPI schemas."""
import pytest
from google.protobuf.any_pb2 import Any
from google.rpc import error_details_pb2, status_pb2
from grpc import StatusCode

from services.gateway.openapi import openapi_document
from services.gateway.transcoding import (STATUS_DETAILS_KEY, RequestBodyError, error_body, field_violations_of,
                                          http_status_of, request_from_json, response_to_json, unary_rpcs)

RPCS = unary_rpcs()
SUBMIT = RPCS[("capture", "SubmitLead")]


def test_every_unary_rpc_is_reachable_and_streaming_ones_are_not():
    assert ("opportunity", "MoveOpportunityStage") in RPCS
    assert ("reporting", "GetFunnel") in RPCS
    assert ("capture", "ImportLeadFile") not in RPCS
    assert ("opportunity", "DownloadAttachment") not in RPCS
    assert SUBMIT.http_path == "/api/v1/capture/SubmitLead"
    assert SUBMIT.grpc_path == "/leadflow.capture.v1.CaptureService/SubmitLead"


def test_snake_case_and_camel_case_bodies_both_parse():
    snake = request_from_json(SUBMIT, {"lead": {"first_name": "Li", "company_size": 20}})
    camel = request_from_json(SUBMIT, {"lead": {"firstName": "Li", "companySize": "20"}})
    assert snake == camel
    assert snake.lead.company_size == 20


@pytest.mark.parametrize("body, field", [
    ({"lead": {"company_size": "many"}}, "lead.company_size"),
    ({"lead": {"attribution": {"source": 5}}}, "lead.attribution.source"),
    ({"lead": {"nickname": "x"}}, "lead.nickname"),
    ({"idempotency_key": 3}, "idempotency_key"),
    ([1, 2], "body"),
])
def test_a_body_that_does_not_fit_names_the_field(body, field):
    with pytest.raises(RequestBodyError) as raised:
        request_from_json(SUBMIT, body)
    assert raised.value.violation.field == field
    assert raised.value.violation.description


def test_responses_print_defaults_and_enums_by_name():
    reply = RPCS[("routing", "ListTasks")].response_class()
    task = reply.tasks.add(task_id="t1", lead_id="l1", status=1)
    task.due_at.FromJsonString("2026-12-04T10:00:00Z")
    body = response_to_json(reply)
    assert body["tasks"][0]["status"] == "TASK_STATUS_OPEN"
    assert body["tasks"][0]["escalation_hop"] == 0
    assert body["tasks"][0]["due_at"] == "2026-12-04T10:00:00Z"
    assert "breached_at" not in body["tasks"][0]  # an unset timestamp stays absent: "not breached"


def test_status_codes_map_to_the_http_statuses_a_client_acts_on():
    assert http_status_of(StatusCode.INVALID_ARGUMENT) == 400
    assert http_status_of(StatusCode.UNAUTHENTICATED) == 401
    assert http_status_of(StatusCode.PERMISSION_DENIED) == 403
    assert http_status_of(StatusCode.NOT_FOUND) == 404
    assert http_status_of(StatusCode.FAILED_PRECONDITION) == 409
    assert http_status_of(StatusCode.RESOURCE_EXHAUSTED) == 429
    assert http_status_of(StatusCode.UNAVAILABLE) == 503
    assert http_status_of(StatusCode.INTERNAL) == 500


def test_field_violations_come_from_the_status_details_a_service_attached():
    detail = Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field="lead.email", description="not an email address")]))
    status = status_pb2.Status(code=3, message="bad", details=[detail])
    violations = field_violations_of([("other", "x"), (STATUS_DETAILS_KEY, status.SerializeToString())])
    body = error_body(StatusCode.INVALID_ARGUMENT, "bad", violations, "trace-1")
    assert body["error"]["field_violations"] == [{"field": "lead.email", "description": "not an email address"}]
    assert body["error"]["http_status"] == 400
    assert field_violations_of([]) == []


def test_openapi_schemas_follow_the_proto3_json_mapping():
    document = openapi_document(RPCS.values(), {}, "test")
    schemas = document["components"]["schemas"]
    task = schemas["leadflow.routing.v1.Task"]["properties"]
    assert task["status"]["enum"][:2] == ["TASK_STATUS_UNSPECIFIED", "TASK_STATUS_OPEN"]
    assert task["due_at"]["format"] == "date-time"
    assert task["escalation_hop"]["type"] == "integer"
    assert schemas["leadflow.capture.v1.LeadInput"]["additionalProperties"] is False
    operation = document["paths"]["/api/v1/routing/ListTasks"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/leadflow.routing.v1.ListTasksRequest"}
    assert {"200", "400", "401", "403", "404", "409", "413", "503"} <= set(operation["responses"])
