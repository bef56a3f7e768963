"""(v) gRPC SubmitLead latency p50/p99 sequential and throughput at 16 concurrent callers, against the
same health check through nameko-grpc and through a plain grpcio server, measured in the same run on
the platform of the whole pipeline."""
import uuid

from grpc_health.v1 import health_pb2

from bench.common import lead_request, plain_grpcio_baseline, scaled, unary_profile


def bench_unary(client) -> dict:
    """Baselines first, on an idle platform: the same RPC through nameko-grpc and plain grpcio."""
    results = {"grpc_health_check_nameko": unary_profile(
        lambda r: client.health("capture").Check(r, timeout=10), lambda i: health_pb2.HealthCheckRequest(),
        scaled(500), scaled(2000))}
    results["grpc_health_check_plain_grpcio"] = plain_grpcio_baseline(scaled(500), scaled(2000))
    batch = f"u{uuid.uuid4().hex[:6]}"
    results["grpc_submit_lead"] = unary_profile(
        client.capture.SubmitLead, lambda i: lead_request(batch, i), scaled(500), scaled(1000))
    return results
