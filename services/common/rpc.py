"""The gRPC boundary of every service: authentication and roles before any work runs, one mapping
from domain errors to gRPC status (with field violations), trace ids, and call metrics."""
import logging
import re
import sys
import time
import uuid
from functools import partial

from google.protobuf.any_pb2 import Any
from google.rpc import error_details_pb2, status_pb2
from grpc import StatusCode
from nameko import config
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import DependencyProvider
from nameko_grpc.constants import Cardinality
from nameko_grpc.context import GrpcContext
from nameko_grpc.entrypoint import Grpc
from nameko_grpc.errors import GrpcError
from nameko_grpc.inspection import Inspector

from services.common import errors, metrics
from services.common.auth import ALL_ROLES, Principal, authenticate, authorize, parse_token_table
from services.common.outages import OUTAGE_ERRORS
from services.common.store import StoreBusy

log = logging.getLogger(__name__)

PRINCIPAL_KEY = "leadflow_principal"
TRACE_ID_HEADER = "x-trace-id"
_TRACE_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")

_STATUS_BY_ERROR = (
    (errors.InvalidArgument, StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, StatusCode.NOT_FOUND),
    (errors.FailedPrecondition, StatusCode.FAILED_PRECONDITION),
    (errors.Unauthenticated, StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, StatusCode.PERMISSION_DENIED),
    (errors.OutOfRange, StatusCode.OUT_OF_RANGE),
    (errors.ResourceExhausted, StatusCode.RESOURCE_EXHAUSTED),
)


# The status travels in HTTP/2 trailers, which clients cap (grpcio: 8 KiB, percent-encoded, so a
# non-ASCII character costs up to 12 bytes). An error that quotes a 100,000-character value would
# exceed it and reach the caller as a broken stream or a deadline, so what it quotes is clipped.
MAX_MESSAGE_BYTES = 1200
MAX_FIELD_BYTES = 120
MAX_VIOLATIONS = 10


def clipped(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes (at a character boundary), marked when cut."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore") + "…"


def to_grpc_error(exc: BaseException, trace_id: str = "") -> GrpcError:
    if isinstance(exc, GrpcError):
        return exc
    # A long request stopped by either says how far it got (``progress``, set where it stopped).
    progress = f"; {exc.progress}" if getattr(exc, "progress", "") else ""
    if isinstance(exc, OUTAGE_ERRORS):
        return GrpcError(code=StatusCode.UNAVAILABLE,
                         message=f"a store is unreachable for a moment; retry (trace id {trace_id}){progress}")
    if isinstance(exc, StoreBusy):
        return GrpcError(code=StatusCode.ABORTED,
                         message=f"the records this request changes are being changed by others; retry "
                                 f"(trace id {trace_id}){progress}")
    for error_type, code in _STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            message = clipped(str(exc), MAX_MESSAGE_BYTES)
            status = status_pb2.Status(code=code.value[0], message=message)
            if isinstance(exc, errors.InvalidArgument):
                shown = exc.violations[:MAX_VIOLATIONS]
                detail = Any()
                detail.Pack(error_details_pb2.BadRequest(field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=clipped(v.field, MAX_FIELD_BYTES),
                                                                description=clipped(v.description, MAX_FIELD_BYTES))
                    for v in shown]))
                status.details.append(detail)
            return GrpcError(code=code, message=message, status=status)
    # Anything else is our bug: say so without leaking internals; the trace id finds the log line.
    return GrpcError(code=StatusCode.INTERNAL, message=f"internal error (trace id {trace_id})")


# Answers a caller gets for its own request: worth a line, not a traceback.
CLIENT_ERRORS = frozenset({
    StatusCode.INVALID_ARGUMENT, StatusCode.NOT_FOUND, StatusCode.PERMISSION_DENIED, StatusCode.FAILED_PRECONDITION,
    StatusCode.UNAUTHENTICATED, StatusCode.ALREADY_EXISTS, StatusCode.OUT_OF_RANGE, StatusCode.RESOURCE_EXHAUSTED,
    StatusCode.CANCELLED})


def log_answer(method: str, error: GrpcError, exc_info=None) -> None:
    """One line per call that did not succeed: info for the caller's own errors, a warning for a
    moment's unavailability, an error with the traceback for our bugs (INTERNAL), each with the
    trace id the caller got (bound to the line by the worker's log context)."""
    if error.code in CLIENT_ERRORS:
        log.info("%s answered %s: %s", method, error.code.name, error.message)
    elif error.code == StatusCode.INTERNAL:
        log.error("%s failed: %s", method, error.message, exc_info=exc_info)
    else:
        log.warning("%s answered %s: %s", method, error.code.name, error.message)


def _metadata_value(metadata, name: str) -> str | None:
    for key, value in metadata:
        if key == name:
            return value
    return None


class LeadflowGrpc(Grpc):
    """nameko-grpc entrypoint that authenticates and authorizes before spawning a worker.

    Context data is built here from scratch (principal, trace id): a client cannot smuggle a
    principal in through nameko's ``x-nameko-*`` metadata, and the bearer token never travels
    on to other services.
    """

    logs_its_own_errors = True  # handle_result logs each failed call once, with its status

    def __init__(self, stub, roles=ALL_ROLES, public=False, **kwargs):
        # Errors the caller can act on are logged as warnings by nameko, not as failures.
        kwargs.setdefault("expected_exceptions", errors.LeadflowError)
        super().__init__(stub, **kwargs)
        self.roles = frozenset(roles)
        self.public = public

    def setup(self):
        super().setup()
        self._stopping = False
        # nameko-grpc inspects the stub module on every property access; once is enough.
        inspector = Inspector(self.stub)
        self._input_type = inspector.input_type_for_method(self.method_name)
        self._cardinality = inspector.cardinality_for_method(self.method_name)
        self.token_table = parse_token_table(config.get("LEADFLOW_AUTH_TOKENS", ""))

    def stop(self):
        # nameko-grpc unregisters the method here while the server still accepts calls, so a call
        # arriving during a graceful shutdown got UNIMPLEMENTED ("Method not found!"), which clients
        # do not retry. Staying registered and answering UNAVAILABLE sends them to another replica.
        self._stopping = True

    def handle_request(self, request_stream, response_stream):
        started = time.perf_counter()
        if self._stopping:
            self._refuse(response_stream, started, GrpcError(
                code=StatusCode.UNAVAILABLE, message="server shutting down; retry on another replica"))
            return
        metadata = request_stream.headers.for_application
        trace_id = _metadata_value(metadata, TRACE_ID_HEADER) or ""
        if not _TRACE_ID.match(trace_id):
            trace_id = uuid.uuid4().hex
        response_stream.headers.set((TRACE_ID_HEADER, trace_id))
        context_data = {"trace_id": trace_id}
        try:
            if not self.public:
                principal = authenticate(_metadata_value(metadata, "authorization"), self.token_table)
                authorize(principal, self.roles, self.method_name)
                context_data[PRINCIPAL_KEY] = principal.as_dict()
        except errors.LeadflowError as exc:
            self._refuse(response_stream, started, to_grpc_error(exc))
            return

        request = request_stream.consume(self._input_type)
        if self._cardinality in (Cardinality.UNARY_STREAM, Cardinality.UNARY_UNARY):
            try:
                request = next(request)
            except GrpcError as error:
                # The transport refused the message (e.g. RESOURCE_EXHAUSTED over the size limit).
                self._refuse(response_stream, started, error)
                return
            except Exception:
                self._refuse(response_stream, started, GrpcError.from_exception(
                    sys.exc_info(), code=StatusCode.INVALID_ARGUMENT, message="request could not be deserialized"))
                return
        context = GrpcContext(request_stream, response_stream)
        try:
            self.container.spawn_worker(
                self, (request, context), {}, context_data=context_data,
                handle_result=partial(self.handle_result, response_stream, started))
        except ContainerBeingKilled:
            raise GrpcError(code=StatusCode.UNAVAILABLE, message="server shutting down") from None

    def handle_result(self, response_stream, started, worker_ctx, result, exc_info):
        if exc_info is not None:
            error = to_grpc_error(exc_info[1], worker_ctx.context_data.get("trace_id", ""))
            log_answer(self.method_name, error, exc_info)
            self._finish(started, error.code)
            response_stream.close(error)
            return result, exc_info
        self._finish(started, StatusCode.OK)
        if self._cardinality in (Cardinality.STREAM_UNARY, Cardinality.UNARY_UNARY):
            result = (result,)
        try:
            response_stream.populate(result)
        except Exception as exc:
            # A streamed response may end with an answer of its own (a subscription whose position
            # fell out of retention, a replica shutting down): logged as any call's answer is.
            error = to_grpc_error(exc, worker_ctx.context_data.get("trace_id", ""))
            log_answer(self.method_name, error, sys.exc_info())
            response_stream.close(error)
        return result, exc_info

    @property
    def stopping(self) -> bool:
        """The service is shutting down: a long call (a stream) should end now."""
        return getattr(self, "_stopping", False)

    def _refuse(self, response_stream, started: float, error: GrpcError) -> None:
        """Answer without running the method: counted, timed and logged like any call."""
        log_answer(self.method_name, error)
        self._finish(started, error.code)
        response_stream.close(error)

    def _finish(self, started: float, code: StatusCode) -> None:
        service = self.container.service_name
        metrics.GRPC_REQUESTS.labels(service, self.method_name, code.name).inc()
        metrics.GRPC_LATENCY.labels(service, self.method_name).observe(time.perf_counter() - started)


class CallerPrincipal(DependencyProvider):
    """Injects the authenticated principal of the current gRPC call (None in event handlers)."""

    def get_dependency(self, worker_ctx):
        data = worker_ctx.context_data.get(PRINCIPAL_KEY)
        return Principal.from_dict(data) if data else None


class ServerStopping(DependencyProvider):
    """Injects ``stopping()``: True once the call's entrypoint is shutting down, so a stream ends in
    time for a graceful stop (nameko waits for running workers) and its client reconnects elsewhere."""

    def get_dependency(self, worker_ctx):
        entrypoint = worker_ctx.entrypoint
        return lambda: getattr(entrypoint, "stopping", False)
