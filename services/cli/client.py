"""A plain grpcio client for Leadflow's five services, for operators' tools, the demo, the tests and
the benchmark — processes that do not run eventlet (inside nameko, services use nameko-grpc)."""
import os

import grpc
from grpc_health.v1 import health_pb2_grpc
from leadflow.capture.v1 import capture_pb2_grpc
from leadflow.events.v1 import events_pb2_grpc
from leadflow.opportunity.v1 import opportunity_pb2_grpc
from leadflow.reporting.v1 import reporting_pb2_grpc
from leadflow.routing.v1 import routing_pb2_grpc
from leadflow.scoring.v1 import scoring_pb2_grpc

from services.common.settings import SERVICE_NAMES, port_for

STUBS = {
    "capture": capture_pb2_grpc.CaptureServiceStub,
    "scoring": scoring_pb2_grpc.ScoringServiceStub,
    "routing": routing_pb2_grpc.RoutingServiceStub,
    "opportunity": opportunity_pb2_grpc.OpportunityServiceStub,
    "reporting": reporting_pb2_grpc.ReportingServiceStub,
}


def default_address(service: str) -> str:
    """``LEADFLOW_<SERVICE>_ADDRESS`` or the service's local default port."""
    return os.environ.get(f"LEADFLOW_{service.upper()}_ADDRESS", f"127.0.0.1:{port_for(service, 'grpc')}")


class _Authorized:
    """Wraps a stub so every call carries the bearer token and a default deadline."""

    def __init__(self, stub, token: str, timeout: float):
        self._stub, self._token, self._timeout = stub, token, timeout

    def __getattr__(self, name):
        return _AuthorizedMethod(getattr(self._stub, name), self._token, self._timeout)


class _AuthorizedMethod:
    """One RPC, called at once (``method(request)``) or started in the background (``method.future``)."""

    def __init__(self, method, token: str, timeout: float):
        self._method, self._token, self._timeout = method, token, timeout

    def _headers(self, metadata) -> list:
        return [*([("authorization", f"Bearer {self._token}")] if self._token else []), *metadata]

    def __call__(self, request, metadata=(), timeout=None, **kwargs):
        return self._method(request, metadata=self._headers(metadata), timeout=timeout or self._timeout, **kwargs)

    def future(self, request, metadata=(), timeout=None, **kwargs):
        return self._method.future(request, metadata=self._headers(metadata), timeout=timeout or self._timeout,
                                   **kwargs)


class LeadflowClient:
    def __init__(self, token: str = "", addresses: dict | None = None, timeout: float = 10.0):
        addresses = {**{s: default_address(s) for s in SERVICE_NAMES}, **(addresses or {})}
        self.channels = {s: grpc.insecure_channel(addresses[s]) for s in SERVICE_NAMES}
        self.addresses = addresses
        self.token = token
        for service, stub_cls in STUBS.items():
            setattr(self, service, _Authorized(stub_cls(self.channels[service]), token, timeout))
        # The event stream is served by reporting. Its Subscribe is long-lived: call it through
        # ``event_stream`` with the token's metadata and no deadline.
        self.events = _Authorized(events_pb2_grpc.EventStreamServiceStub(self.channels["reporting"]), token, timeout)
        self.event_stream = events_pb2_grpc.EventStreamServiceStub(self.channels["reporting"])

    def health(self, service: str):
        return health_pb2_grpc.HealthStub(self.channels[service])

    def with_token(self, token: str) -> "LeadflowClient":
        return LeadflowClient(token, self.addresses)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
