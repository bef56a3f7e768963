"""What every section of the benchmark shares: sizes, percentiles, latency profiles, the same-run
baselines' helpers, waiting for a platform to settle, callers' tokens, and the platform of the whole
pipeline that sections (iii), (iv), (v), (vi) and (xii) run on."""
import concurrent.futures
import json
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from kombu import Connection, Exchange, Queue
from leadflow.capture.v1 import capture_pb2
from leadflow.common.v1 import common_pb2
from leadflow.routing.v1 import routing_pb2

from services.cli.client import LeadflowClient
from services.common.auth import Principal, Role, new_token, token_entry
from services.devstack.supervisor import Platform

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))


def scaled(n: int) -> int:
    return max(10, int(n * SCALE))


def percentile(values, p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# Callers ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tokens:
    """An admin's, an integration's and team-1's manager's bearer tokens, and the token table the
    services are given."""

    admin: str
    integration: str
    manager: str
    table: str


def make_tokens() -> Tokens:
    admin_token, integration_token, manager_token = new_token(), new_token(), new_token()
    table = ",".join((token_entry(Principal("bench-admin", Role.ADMIN, "hq"), admin_token),
                      token_entry(Principal("bench-integration", Role.INTEGRATION, "hq"), integration_token),
                      token_entry(Principal("bench-manager", Role.MANAGER, "team-1"), manager_token)))
    return Tokens(admin_token, integration_token, manager_token, table)


def logs_dir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"leadflow-bench-{name}-"))


# Latency ----------------------------------------------------------------------------------------------
def unary_profile(call, make_request, sequential: int, concurrent_calls: int, concurrency: int = 16,
                  warm_up: int = 20) -> dict:
    for i in range(warm_up):
        call(make_request(i))  # warm up connections
    latencies = []
    for i in range(sequential):
        started = time.perf_counter()
        call(make_request(i))
        latencies.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(call, (make_request(sequential + i) for i in range(concurrent_calls))))
    return {"p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            f"per_s_at_{concurrency}": concurrent_calls / (time.perf_counter() - started)}


def sequential_profile(call, request, calls: int, budget_seconds: float = 0.0) -> dict:
    """p50/p99 of ``calls`` sequential calls of one request after one warm-up call. With a budget,
    a call so slow that ``calls`` of them would overrun it is timed fewer times (at least three)."""
    started = time.perf_counter()
    response = call(request)
    warm_up = time.perf_counter() - started
    if budget_seconds and warm_up * calls > budget_seconds:
        calls = max(3, int(budget_seconds / warm_up))
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        response = call(request)
        latencies.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99), "calls": calls,
            "warm_up_ms": warm_up * 1000, "response_bytes": response.ByteSize()}


def plain_grpcio_baseline(sequential: int, concurrent_calls: int) -> dict:
    """The same machine's floor: grpcio's own server answering the standard health check."""
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(16))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        return unary_profile(lambda r: stub.Check(r, timeout=10), lambda i: health_pb2.HealthCheckRequest(),
                             sequential, concurrent_calls)
    finally:
        channel.close()
        server.stop(0)


# Waiting ----------------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def settle(stack, quiet_seconds: float = 2.0, limit: float = 300.0) -> None:
    """Wait until the services are idle again (leads from the previous step all processed): their
    processes together use under 5 % of a core each. An idle service is not at zero (its event loop,
    timers and outbox sweep cost about 3 % of a core), so a stricter test would wait out ``limit``."""
    def busy() -> float:
        return sum(cpu_seconds(p.process.pid) for p in stack.processes)
    deadline = time.monotonic() + limit
    last = busy()
    while time.monotonic() < deadline:
        time.sleep(quiet_seconds)
        now = busy()
        if now - last < 0.05 * quiet_seconds * len(stack.processes):
            return
        last = now


def _wait(predicate, limit: float = 900) -> float:
    started = time.perf_counter()
    while not predicate() and time.perf_counter() - started < limit:
        time.sleep(0.2)
    return time.perf_counter() - started


def declare_sink(amqp_uri: str, service: str, stale_queues=()) -> None:
    """A bounded queue for everything ``service`` emits, standing in for consumers that are not running
    in this phase (unconsumed events would stay in the outbox); ``stale_queues`` of absent consumers
    are deleted so they do not fill up."""
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        exchange = Exchange(f"{service}.events", type="topic", durable=True)
        exchange(channel).declare()
        Queue(f"bench-{service}-sink", exchange=exchange, routing_key="#", durable=False,
              queue_arguments={"x-max-length": 1000})(channel).declare()
        for name in stale_queues:
            channel.queue_delete(name)


# Driving the platform ---------------------------------------------------------------------------------
def lead_request(batch: str, index: int) -> capture_pb2.SubmitLeadRequest:
    return capture_pb2.SubmitLeadRequest(
        lead=capture_pb2.LeadInput(email=f"buyer{index}@{batch}.example.com", title="CTO", company_size=800,
                                   industry="software", attribution=common_pb2.Attribution(source="referral")),
        idempotency_key=f"{batch}-{index}")


class AssignmentWatcher:
    """Counts lead_assigned events of one batch as routing publishes them."""

    def __init__(self, amqp_uri: str):
        from tests.support import EventTap
        self.tap = EventTap(amqp_uri, "routing", ("lead_assigned",))
        self.arrived = {}  # lead id -> time.perf_counter() when its lead_assigned reached us

    def wait(self, lead_ids: set, timeout: float) -> list:
        deadline = time.monotonic() + timeout
        seen = {}
        while time.monotonic() < deadline and len(seen) < len(lead_ids):
            for event in self.tap.collect(len(self.tap.received) + 1, timeout=0.2):
                self.arrived.setdefault(event["lead_id"], time.perf_counter())
                if event["lead_id"] in lead_ids:
                    seen[event["lead_id"]] = event
        return list(seen.values())

    def wait_for_source(self, source: str, expected: int, start_index: int, timeout: float) -> tuple[int, float]:
        """Wait until ``expected`` distinct leads of ``source`` are assigned: (how many were, and the
        time.perf_counter() at which the last of them reached us, or 0.0 if none did)."""
        deadline = time.monotonic() + timeout
        leads, last_at, checked = set(), 0.0, start_index
        received = self.tap.received
        while time.monotonic() < deadline and len(leads) < expected:
            if not self.tap._take():
                time.sleep(0.02)
                continue
            for event in received[checked:]:
                if event.get("source") == source and event["lead_id"] not in leads:
                    leads.add(event["lead_id"])
                    last_at = time.perf_counter()
            checked = len(received)
        return len(leads), last_at


@dataclass
class PipelinePlatform:
    """The five services and the gateway, with an integration and an admin client, and a watcher of
    lead_assigned events: what sections (iii), (iv), (v), (vi) and (xii) share."""

    stack: Platform
    client: LeadflowClient
    admin: LeadflowClient
    watcher: AssignmentWatcher


@contextmanager
def pipeline_platform(infra, tokens: Tokens):
    stack = Platform({**infra.env(), "LEADFLOW_AUTH_TOKENS": tokens.table, "LOG_LEVEL": "WARNING"},
                     logs_dir("logs"), any_free_port=True, gateway=True).start()
    try:
        stack.wait_ready()
        client = LeadflowClient(tokens.integration, stack.addresses())
        admin = client.with_token(tokens.admin)
        for rep in ("amy", "bo", "chen", "dana"):
            admin.routing.PutRep(routing_pb2.PutRepRequest(rep=routing_pb2.Rep(
                rep_id=f"bench.{rep}", name=rep.title(), team="bench")))
        watcher = AssignmentWatcher(infra.amqp_uri)
        yield PipelinePlatform(stack, client, admin, watcher)
        client.close()
        admin.close()
    finally:
        stack.stop()


def write_json(path: Path, results: dict) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
