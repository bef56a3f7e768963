"""HTTP/JSON ⇄ gRPC transcoding for the gateway, pure: no sockets, no event loop.

Every unary RPC of the five services is reachable as ``POST /api/v1/{service}/{Method}`` with the
request message as proto3 JSON. The catalogue, the JSON mapping, the error mapping and the OpenAPI
document are all derived from the protobuf descriptors, so a field or RPC added to ``protos/`` is on
the HTTP API, and in its OpenAPI document, without a line changed here.
"""
import re
from dataclasses import dataclass

from google.protobuf import descriptor as d
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2, status_pb2
from grpc import StatusCode
from leadflow.capture.v1 import capture_pb2
from leadflow.opportunity.v1 import opportunity_pb2
from leadflow.reporting.v1 import reporting_pb2
from leadflow.routing.v1 import routing_pb2
from leadflow.scoring.v1 import scoring_pb2

from services.common.errors import FieldViolation

SERVICE_DESCRIPTORS = {
    "capture": capture_pb2.DESCRIPTOR.services_by_name["CaptureService"],
    "scoring": scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"],
    "routing": routing_pb2.DESCRIPTOR.services_by_name["RoutingService"],
    "opportunity": opportunity_pb2.DESCRIPTOR.services_by_name["OpportunityService"],
    "reporting": reporting_pb2.DESCRIPTOR.services_by_name["ReportingService"],
}
API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class Rpc:
    service: str            # "capture"
    method: d.MethodDescriptor

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def grpc_path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def http_path(self) -> str:
        return f"{API_PREFIX}/{self.service}/{self.method.name}"

    @property
    def request_class(self):
        return GetMessageClass(self.method.input_type)

    @property
    def response_class(self):
        return GetMessageClass(self.method.output_type)


def unary_rpcs() -> dict[tuple[str, str], Rpc]:
    """(service, Method) -> Rpc for every unary RPC. Streaming RPCs (file imports, attachments)
    carry files in chunks; browsers upload those differently, so they are not transcoded."""
    return {(service, method.name): Rpc(service, method)
            for service, descriptor in SERVICE_DESCRIPTORS.items()
            for method in descriptor.methods
            if not method.client_streaming and not method.server_streaming}


# --- JSON -> request message ------------------------------------------------------------------------------

_PARSE_STEP = re.compile(r'^Failed to parse (\S+) field: ')
_UNKNOWN_FIELD = re.compile(r'has no field named "([^"]+)"(?: at "([^"]+)")?')


def violation_of_parse_error(error: json_format.ParseError) -> FieldViolation:
    """json_format says where it failed as nested "Failed to parse x field: " prefixes; turn that
    into the dotted field path a form can put the message next to."""
    text, path = str(error), []
    while (step := _PARSE_STEP.match(text)):
        path.append(step.group(1))
        text = text[step.end():]
    unknown = _UNKNOWN_FIELD.search(text)
    if unknown:
        # 'at "Request.a.b"' is where the unknown name sits (the prefixes above may be missing, e.g.
        # inside a oneof); the first component is the request message itself.
        if unknown.group(2):
            path = unknown.group(2).split(".")[1:]
        path.append(unknown.group(1))
        text = f"no such field ({unknown.group(1)!r})"
    # Some messages end with where the parser was (' at Request.lead.'); the field path says it better.
    text = re.sub(r" at [\w.]+\.?$", "", text.split("\n")[0]).rstrip(".")
    return FieldViolation(".".join(path) or "body", text or "not valid")


def request_from_json(rpc: Rpc, body) -> object:
    """The request message; raises RequestBodyError naming the field when the body does not fit."""
    if not isinstance(body, dict):
        raise RequestBodyError(FieldViolation("body", "must be a JSON object (the request message)"))
    return message_from_json(rpc.request_class(), body)


def message_from_json(message, body: dict, field_prefix: str = ""):
    """Fill ``message`` from proto3 JSON; a violation's field is prefixed (e.g. "header.") when the
    message is one field of a larger request."""
    try:
        json_format.ParseDict(body, message)
    except json_format.ParseError as error:
        violation = violation_of_parse_error(error)
        field = f"{field_prefix}{violation.field}" if violation.field != "body" else field_prefix.rstrip(".") or "body"
        raise RequestBodyError(FieldViolation(field, violation.description)) from None
    except (RecursionError, DecodeError, ValueError, TypeError) as error:
        raise RequestBodyError(FieldViolation(field_prefix.rstrip(".") or "body",
                                              f"not a valid {message.DESCRIPTOR.name}: {error}")) from None
    return message


class RequestBodyError(ValueError):
    def __init__(self, violation: FieldViolation):
        super().__init__(f"{violation.field}: {violation.description}")
        self.violation = violation


def response_to_json(message) -> dict:
    """snake_case field names, as in the contracts and the CLI; every scalar and list printed, so a
    frontend never has to know proto3's "absent means default" rule."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


# --- gRPC status -> HTTP ----------------------------------------------------------------------------------

HTTP_STATUS = {
    StatusCode.INVALID_ARGUMENT: 400,
    StatusCode.OUT_OF_RANGE: 400,
    StatusCode.UNAUTHENTICATED: 401,
    StatusCode.PERMISSION_DENIED: 403,
    StatusCode.NOT_FOUND: 404,
    StatusCode.ALREADY_EXISTS: 409,
    StatusCode.ABORTED: 409,
    # A refused transition (an unmet exit criterion, a closed deal) conflicts with the current state.
    StatusCode.FAILED_PRECONDITION: 409,
    StatusCode.RESOURCE_EXHAUSTED: 429,
    StatusCode.CANCELLED: 499,
    StatusCode.UNIMPLEMENTED: 501,
    StatusCode.UNAVAILABLE: 503,
    StatusCode.DEADLINE_EXCEEDED: 504,
}
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def http_status_of(code: StatusCode) -> int:
    return HTTP_STATUS.get(code, 500)


def field_violations_of(trailing_metadata) -> list[FieldViolation]:
    """The BadRequest field violations a service attached to its status (services/common/rpc.py)."""
    for key, value in trailing_metadata or ():
        if key != STATUS_DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        violations = []
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                violations += [FieldViolation(v.field, v.description) for v in bad_request.field_violations]
        return violations
    return []


def error_body(code: StatusCode, message: str, violations=(), trace_id: str = "") -> dict:
    return {"error": {
        "code": code.name,
        "http_status": http_status_of(code),
        "message": message,
        "field_violations": [{"field": v.field, "description": v.description} for v in violations],
        "trace_id": trace_id,
    }}
