"""(xii) The HTTP/JSON gateway on the platform of the whole pipeline: GetLead p50/p99 and calls/s at 16
callers through POST /api/v1/capture/GetLead, against the same GetLead over gRPC directly and the
gateway's own /healthz (no backend call), all in the same run."""
import json
import threading
import uuid

from leadflow.capture.v1 import capture_pb2

from bench.common import lead_request, unary_profile


def bench_gateway(gateway_url: str, client, token: str, sequential: int, concurrent_calls: int) -> dict:
    """What the HTTP/JSON hop costs: the same read over gRPC and through the gateway, each caller
    keeping one HTTP/1.1 connection open as a browser does."""
    import http.client
    lead_id = client.capture.SubmitLead(lead_request(f"g{uuid.uuid4().hex[:6]}", 0)).lead.lead_id
    host, port = gateway_url.removeprefix("http://").split(":")
    connections = threading.local()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def post(path: str, body: bytes | None):
        if not hasattr(connections, "http"):
            connections.http = http.client.HTTPConnection(host, int(port), timeout=30)
        connection = connections.http
        connection.request("POST" if body is not None else "GET", path, body, headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status} {payload[:200]!r}")
        return payload

    body = json.dumps({"lead_id": lead_id}).encode()
    return {
        "grpc_get_lead": unary_profile(client.capture.GetLead, lambda i: capture_pb2.GetLeadRequest(lead_id=lead_id),
                                       sequential, concurrent_calls),
        "http_get_lead": unary_profile(lambda _: post("/api/v1/capture/GetLead", body), lambda i: None,
                                       sequential, concurrent_calls),
        "http_healthz": unary_profile(lambda _: post("/healthz", None), lambda i: None, sequential, concurrent_calls),
    }
