"""What every Leadflow service has: /healthz, /readyz and /metrics on its HTTP port, the standard
gRPC health check, call and event telemetry, structured-log context, and the caller's principal."""
import json
import time

from grpc_health.v1 import health_pb2, health_pb2_grpc
from kombu import Connection
from nameko import config
from nameko.extensions import DependencyProvider
from nameko.web.handlers import http
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response

from services.common import logs, metrics
from services.common.rpc import CallerPrincipal, LeadflowGrpc
from services.common.messaging import ReliableEventHandler

health_rpc = LeadflowGrpc.implementing(health_pb2_grpc.HealthStub)


class Readiness(DependencyProvider):
    """Ready means the broker and every store this service uses answer.

    The answer is reused for a second: probes and the public gRPC health check may be called often,
    and each check opens a broker connection."""

    CACHE_SECONDS = 1.0

    def setup(self):
        self._checked_at, self._problems = float("-inf"), {}

    def check(self) -> dict:
        if time.monotonic() - self._checked_at >= self.CACHE_SECONDS:
            self._problems = self._probe()
            self._checked_at = time.monotonic()
        return self._problems

    def _probe(self) -> dict:
        problems = {}
        for dependency in self.container.dependencies:
            probe = getattr(dependency, "check_ready", None)
            if probe is None:
                continue
            try:
                probe()
            except Exception as exc:
                problems[type(dependency).__name__] = str(exc)[:200]
        try:
            with Connection(config["AMQP_URI"], connect_timeout=3) as connection:
                connection.ensure_connection(max_retries=1)
        except Exception as exc:
            problems["broker"] = str(exc)[:200]
        return problems

    def get_dependency(self, worker_ctx):
        return self.check


class Telemetry(DependencyProvider):
    """Binds trace_id / lead_id / event_id (a batch: its size) to the worker's log lines and times event
    handlers (a batch as a whole)."""

    def __init__(self):
        self.started = {}

    def worker_setup(self, worker_ctx):
        fields = {"trace_id": worker_ctx.context_data.get("trace_id")}
        if isinstance(worker_ctx.entrypoint, ReliableEventHandler) and worker_ctx.args:
            event = worker_ctx.args[0]
            if isinstance(event, list):  # a batch: its log lines name its events only when it holds one
                fields["events"] = len(event)
                event = event[0] if len(event) == 1 else None
            if isinstance(event, dict):
                fields.update(event_id=event.get("event_id"), lead_id=event.get("lead_id"),
                              trace_id=event.get("trace_id") or fields["trace_id"])
            self.started[worker_ctx.call_id] = time.perf_counter()
        logs.trace_context.set({k: v for k, v in fields.items() if v})

    def worker_teardown(self, worker_ctx):
        started = self.started.pop(worker_ctx.call_id, None)
        if started is not None:
            metrics.EVENT_LATENCY.labels(self.container.service_name, worker_ctx.entrypoint.method_name) \
                .observe(time.perf_counter() - started)


class LeadflowService:
    """Base class of the five services."""

    readiness = Readiness()
    telemetry = Telemetry()
    caller = CallerPrincipal()

    @http("GET", "/healthz")
    def healthz(self, request):
        return Response('{"status": "ok"}', mimetype="application/json")

    @http("GET", "/readyz")
    def readyz(self, request):
        problems = self.readiness()
        if problems:
            return Response(json.dumps({"status": "unavailable", "problems": problems}), status=503,
                            mimetype="application/json")
        return Response('{"status": "ready"}', mimetype="application/json")

    @http("GET", "/metrics")
    def prometheus_metrics(self, request):
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)

    @health_rpc(public=True)
    def Check(self, request, context):
        serving = not self.readiness()
        return health_pb2.HealthCheckResponse(
            status=health_pb2.HealthCheckResponse.SERVING if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING)
