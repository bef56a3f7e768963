"""Public HTTP endpoints (web forms, webhooks, the tracking beacon): the same error contract as gRPC
— a clear status and the violated fields in the body — plus request size limits and the caller's
address, written once here."""
import json
import logging

from nameko.web.handlers import HttpRequestHandler
from werkzeug.wrappers import Response

from services.common.errors import (FailedPrecondition, FieldViolation, InvalidArgument, LeadflowError, NotFound,
                                    PermissionDenied, Unauthenticated)
from services.common.outages import OUTAGE_ERRORS
from services.common.store import StoreBusy

log = logging.getLogger(__name__)


class PayloadTooLarge(LeadflowError):
    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(f"the request body is larger than {limit} bytes")


class RateLimited(LeadflowError):
    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(f"too many requests from this address; retry after {retry_after} s")


class UnsupportedMediaType(LeadflowError):
    pass


def json_response(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, headers=headers,
                    mimetype="application/json")


def error_response(exc: BaseException) -> Response:
    """HTTP status for a domain error: 422 names each bad field, 429 says when to retry, outages
    are 503 (try again), anything unexpected is 500 without internals."""
    if isinstance(exc, InvalidArgument):
        return json_response({"error": "invalid_argument", "message": "some fields are not valid",
                              "violations": [{"field": v.field, "description": v.description}
                                             for v in exc.violations]}, 422)
    simple = ((NotFound, 404, "not_found"), (Unauthenticated, 401, "unauthenticated"),
              (PermissionDenied, 403, "permission_denied"), (FailedPrecondition, 409, "failed_precondition"),
              (PayloadTooLarge, 413, "payload_too_large"), (UnsupportedMediaType, 415, "unsupported_media_type"))
    for kind, status, code in simple:
        if isinstance(exc, kind):
            return json_response({"error": code, "message": str(exc)}, status)
    if isinstance(exc, RateLimited):
        return json_response({"error": "rate_limited", "message": str(exc)}, 429,
                             {"Retry-After": str(exc.retry_after)})
    if isinstance(exc, OUTAGE_ERRORS):
        return json_response({"error": "unavailable", "message": "a store is unavailable; try again"}, 503,
                             {"Retry-After": "5"})
    if isinstance(exc, StoreBusy):
        return json_response({"error": "busy", "message": "the records this request changes are busy; try again"},
                             503, {"Retry-After": "1"})
    log.error("public endpoint failed", exc_info=exc)
    return json_response({"error": "internal", "message": "internal error"}, 500)


class PublicHttp(HttpRequestHandler):
    """nameko's HTTP entrypoint with Leadflow's error contract instead of a text traceback name."""

    def __init__(self, method, url, **kwargs):
        # Errors the caller can act on (bad input, rate limits) are warnings in the log, not failures.
        kwargs.setdefault("expected_exceptions", LeadflowError)
        super().__init__(method, url, **kwargs)

    def response_from_exception(self, exc):
        return error_response(exc)


public_http = PublicHttp.decorator


def read_body(request, limit: int) -> bytes:
    """The request body, refused with 413 before reading more than ``limit`` bytes — whether the
    client announced its length or streams it chunked."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(limit)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(limit)
    return body


def json_object(body: bytes, field: str = "body") -> dict:
    """A JSON object from a request body, or InvalidArgument naming the body."""
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise InvalidArgument([FieldViolation(field, "is not valid JSON")]) from None
    if not isinstance(value, dict):
        raise InvalidArgument([FieldViolation(field, "must be a JSON object")])
    return value


def client_address(request, trusted_proxy_hops: int) -> str:
    """The caller's address. Behind N trusted proxies (an ingress), it is the Nth address from the end
    of X-Forwarded-For; a client cannot forge the entries the proxies append."""
    forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
    if trusted_proxy_hops > 0 and len(forwarded) >= trusted_proxy_hops:
        return forwarded[-trusted_proxy_hops]
    return request.remote_addr or "unknown"
