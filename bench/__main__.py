"""``make bench``: Leadflow's benchmark (not a test). One run measures, on this machine:

  (i)   raw RabbitMQ: persistent publishes with confirms, and consumes, msgs/s
  (ii)  raw store: SecantusDB insert_one/s (and insert_many docs/s for reference)
  (iii) end-to-end pipeline throughput: leads/s captured -> scored -> assigned, over gRPC
  (iv)  capture -> assignment latency p50/p95/p99 at a fixed offered load of half of (iii)
  (v)   gRPC SubmitLead latency p50/p99 sequential and throughput at 16 concurrent callers,
        against a plain grpcio server's health check measured in the same run
  (vi)  resident memory of each service
  (vii) capture's bulk channels on a capture-only platform: ImportLeadFile rows/s on a 100,000-row
        CSV (against the raw store's insert_many docs/s in the same run), the real X Education
        export when ../shared is present, and ScanBusinessCard seconds per card (Tesseract OCR)
  (viii) scoring on a capture + scoring platform: lead_captured and lead_activity_recorded events
        scored per second end to end (published as capture's relay would, counted once stored; against
        the raw broker's consume rate), GetLeadScore p50/p99 (against plain grpcio's health check), and
        TrainWinModel on the X Education export imported through capture (against the same training
        run in this process on the same leads)
  (ix)  routing on a routing-only platform, one replica and then three: lead_qualified events (published
        as scoring's relay would) assigned per second under a policy of rules, territories, weights and
        capacities, and qualification -> assignment latency p50/p99 at half that rate (against the pure
        decision alone, in this process, and the raw broker's consume rate)
  (x)   opportunity on an opportunity-only platform: ImportOpportunities rows/s on a synthetic history
        (against the raw store's insert_many docs/s) and on the Maven history when ../shared is present,
        and MoveOpportunityStage p50/p99 (against plain grpcio's health check)
  (xi)  reporting on a reporting-only platform: RebuildProjections of a 20,000-event log (events/s);
        then a history of 1,000,000 events (100,000 leads, each converted into an opportunity) loaded
        straight into its log and read models, and GetFunnel and GetWinRate p50/p99 on it (against
        plain grpcio's health check); then live events projected per second through the broker
        (against the raw broker's consume rate)
  (xii) the HTTP/JSON gateway on the platform of (iii): GetLead p50/p99 and calls/s at 16 callers
        through POST /api/v1/capture/GetLead, against the same GetLead over gRPC directly and the
        gateway's own /healthz (no backend call), all in the same run

Every figure that depends on the machine is also given as a ratio to a baseline measured in the
same run, because these machines are noisy. Prints a table and writes bench/results/latest.json.
Sizes can be scaled with BENCH_SCALE (default 1.0).
"""
import concurrent.futures
import itertools
import json
import os
import platform as host
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import grpc
import pymongo
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from kombu import Connection, Exchange, Producer, Queue
from leadflow.capture.v1 import capture_pb2
from leadflow.common.v1 import common_pb2
from leadflow.routing.v1 import routing_pb2
from leadflow.scoring.v1 import scoring_pb2

from services.cli.client import LeadflowClient
from services.common.auth import Principal, Role, new_token, token_entry
from services.common.events import parse_iso
from services.devstack.sandbox import Sandbox
from services.devstack.supervisor import Platform

RESULTS = Path(__file__).resolve().parent / "results"
SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))


def scaled(n: int) -> int:
    return max(10, int(n * SCALE))


def percentile(values, p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# (i) ------------------------------------------------------------------------------------------------
def bench_broker(amqp_uri: str, count: int) -> dict:
    queue_name = f"bench-{uuid.uuid4().hex[:6]}"
    body = json.dumps({"event_id": str(uuid.uuid4()), "lead": {"email": "x" * 40, "source": "web"}})
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        queue = Queue(queue_name, exchange=Exchange("", type="direct"), routing_key=queue_name, durable=True)
        producer = Producer(connection.channel())
        started = time.perf_counter()
        for _ in range(count):
            producer.publish(body, routing_key=queue_name, delivery_mode=2, declare=[queue],
                             content_type="application/json")
        published = count / (time.perf_counter() - started)
    with Connection(amqp_uri) as connection:
        received = 0
        started = time.perf_counter()

        def on_message(body, message):
            nonlocal received
            received += 1
            message.ack()
        with connection.Consumer(Queue(queue_name, durable=True), callbacks=[on_message], prefetch_count=200):
            while received < count:
                connection.drain_events(timeout=10)
        consumed = count / (time.perf_counter() - started)
        Queue(queue_name)(connection.channel()).delete()
    return {"publish_confirmed_per_s": published, "consume_per_s": consumed}


# (ii) -----------------------------------------------------------------------------------------------
def bench_store(mongo_uri: str, count: int) -> dict:
    collection = pymongo.MongoClient(mongo_uri)["leadflow_bench"]["leads"]
    collection.drop()
    started = time.perf_counter()
    for i in range(count):
        collection.insert_one({"_id": str(uuid.uuid4()), "email": f"lead{i}@example.com", "source": "web"})
    single = count / (time.perf_counter() - started)
    batch = [{"_id": str(uuid.uuid4()), "email": f"lead{i}@example.com"} for i in range(count * 5)]
    started = time.perf_counter()
    collection.insert_many(batch)
    many = len(batch) / (time.perf_counter() - started)
    collection.drop()
    return {"insert_one_per_s": single, "insert_many_docs_per_s": many}


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


# (iii) ----------------------------------------------------------------------------------------------
def bench_pipeline(client, watcher, count: int, concurrency: int = 32) -> dict:
    batch = f"tp{uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        lead_ids = {r.lead.lead_id for r in pool.map(client.capture.SubmitLead,
                                                        (lead_request(batch, i) for i in range(count)))}
    submitted = time.perf_counter() - started
    assigned = watcher.wait(lead_ids, timeout=600)
    elapsed = time.perf_counter() - started
    return {"leads": count, "assigned": len(assigned), "seconds": elapsed,
            "leads_assigned_per_s": len(assigned) / elapsed, "submit_per_s": count / submitted}


# (iv) -----------------------------------------------------------------------------------------------
def bench_latency_at_load(client, watcher, rate: float, seconds: float) -> dict:
    batch = f"lat{uuid.uuid4().hex[:6]}"
    count = max(20, int(rate * seconds))
    interval = 1.0 / rate
    lead_ids = set()
    lock = threading.Lock()
    start = time.perf_counter()

    def send(index: int):
        response = client.capture.SubmitLead(lead_request(batch, index))
        with lock:
            lead_ids.add(response.lead.lead_id)
    # Open loop: requests leave on schedule whether or not earlier ones have finished.
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        for index in range(count):
            delay = start + index * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, index)
    events = watcher.wait(set(lead_ids), timeout=300)
    latencies = [(parse_iso(e["assigned_at"]) - parse_iso(e["lead_captured_at"])).total_seconds() * 1000
                 for e in events]
    return {"offered_leads_per_s": rate, "leads": count, "assigned": len(events),
            "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "p99_ms": percentile(latencies, 99)}


# (v) ------------------------------------------------------------------------------------------------
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


# (xii) -----------------------------------------------------------------------------------------------
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


def settle(stack, quiet_seconds: float = 2.0, limit: float = 300.0) -> None:
    """Wait until the services are idle again (leads from the previous step all processed)."""
    def busy() -> float:
        return sum(cpu_seconds(p.process.pid) for p in stack.processes)
    deadline = time.monotonic() + limit
    last = busy()
    while time.monotonic() < deadline:
        time.sleep(quiet_seconds)
        now = busy()
        if now - last < 0.1 * quiet_seconds:
            return
        last = now


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# (vi) -----------------------------------------------------------------------------------------------
def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# Capture's bulk channels -----------------------------------------------------------------------------
SHARED_XEDUCATION = Path(__file__).resolve().parents[2] / "shared" / "data" / "xeducation-leads" / "train.csv"


def synthetic_lead_file(rows: int) -> bytes:
    """A realistic CRM export: names, business emails, companies, countries and messy sources."""
    import csv
    import io
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Full Name", "Email", "Mobile", "Company", "Country", "Lead Source", "Job Title", "Tags"])
    batch = uuid.uuid4().hex[:6]
    given = ("Anna", "Wei", "Priya", "Jonas", "Mei", "Carlos", "Fatima", "Kenji", "Olga", "Tom")
    family = ("Schmidt", "Wang", "Raman", "Weber", "Lin", "Garcia", "Haddad", "Sato", "Ivanova", "Brown",
              "Zhang", "Kumar", "Novak", "Okafor", "Rossi", "Dubois", "Silva", "Kim", "Nguyen", "Müller")
    for i in range(rows):
        writer.writerow([f"{given[i % 10]}{i} {family[(i // 10) % 20]}", f"p{i}.{batch}@company{i % 5000}.com",
                         f"+86 139{i:08d}" if i % 3 == 0 else "", f"Company {i % 5000} Ltd",
                         ("China", "DE", "India", "Select")[i % 4],
                         ("Google", "google", "Trade Show", "Referral")[i % 4],
                         ("CTO", "Buyer", "Head of Sales", "")[i % 4], "bench"])
    return buffer.getvalue().encode()


def lead_file_requests(content: bytes, **header) -> list:
    """ImportLeadFile's request stream: the header, then the file in 1 MiB chunks."""
    messages = [capture_pb2.ImportLeadFileRequest(header=capture_pb2.ImportHeader(filename="bench.csv", **header))]
    return messages + [capture_pb2.ImportLeadFileRequest(chunk=content[i:i + (1 << 20)])
                       for i in range(0, len(content), 1 << 20)]


def import_file(client, content: bytes, source: str, prefix: str = "") -> tuple[object, float]:
    messages = lead_file_requests(content, attribution=common_pb2.Attribution(source=source),
                                  external_id_prefix=prefix)
    started = time.perf_counter()
    report = client.capture.ImportLeadFile(iter(messages), timeout=3600)
    return report, time.perf_counter() - started


def raw_insert_of_imported_leads(infra, count: int) -> dict:
    """The store alone writing the documents the import wrote, into a collection with the same
    indexes, 500 per insert_many: what the import costs beyond the unavoidable writes."""
    from services.capture.models import LeadDocument
    from services.common.settings import database_name
    client = pymongo.MongoClient(infra.mongo_uri)
    source = client[database_name(infra.db_prefix, "capture")]["leads"]
    scratch = client["leadflow_bench"]["leads_indexed"]
    scratch.drop()
    for spec in LeadDocument._meta["index_specs"]:
        scratch.create_index(spec["fields"])
    documents = [{**doc, "_id": str(uuid.uuid4())} for doc in source.find({}).limit(count)]
    started = time.perf_counter()
    for start in range(0, len(documents), 500):
        scratch.insert_many(documents[start:start + 500])
    seconds = time.perf_counter() - started
    scratch.drop()
    client.close()
    return {"documents": len(documents), "docs_per_s": len(documents) / seconds if documents else 0.0}


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


def bench_capture_bulk(infra, table: str, integration_token: str, rows: int) -> dict:
    """Capture alone, so the leads it imports do not start 100,000 pipelines; its events go to a
    bounded sink queue (the cost of publishing them is part of the import, as in production)."""
    declare_sink(infra.amqp_uri, "capture", stale_queues=(
        "evt-capture-lead_captured--scoring.handle_lead_captured",
        "evt-capture-lead_captured--reporting.handle_lead_captured",
        "evt-capture-lead_merged--reporting.handle_lead_merged"))
    logs = Path(tempfile.mkdtemp(prefix="leadflow-bench-capture-"))
    stack = Platform({**infra.env(), "LEADFLOW_AUTH_TOKENS": table, "LOG_LEVEL": "WARNING"}, logs,
                     services=("capture",), any_free_port=True).start()
    results = {}
    try:
        stack.wait_ready()
        client = LeadflowClient(integration_token, stack.addresses())
        content = synthetic_lead_file(rows)
        cpu_before = cpu_seconds(stack.processes[0].process.pid)
        report, seconds = import_file(client, content, "bench-import")
        results["import_synthetic"] = {
            "rows": report.rows, "accepted": report.accepted, "merged": report.merged, "rejected": report.rejected,
            "seconds": seconds, "rows_per_s": report.rows / seconds, "megabytes": len(content) / 1e6,
            "capture_cpu_seconds": cpu_seconds(stack.processes[0].process.pid) - cpu_before}
        results["store_same_lead_documents"] = raw_insert_of_imported_leads(infra, report.accepted)
        report, seconds = import_file(client, content, "bench-import")
        results["reimport_synthetic"] = {"rows": report.rows, "unchanged": report.unchanged,
                                         "accepted": report.accepted, "rows_per_s": report.rows / seconds}
        if SHARED_XEDUCATION.exists():
            report, seconds = import_file(client, SHARED_XEDUCATION.read_bytes(), "xeducation",
                                          prefix=f"bench-{uuid.uuid4().hex[:6]}:")
            results["import_xeducation"] = {"rows": report.rows, "accepted": report.accepted,
                                            "rejected": report.rejected, "rows_per_s": report.rows / seconds}
        from services.devstack.sample_cards import SAMPLE_CARDS, render_card
        timings, correct = [], 0
        for card in SAMPLE_CARDS:
            image = render_card(card, fmt="JPEG")
            started = time.perf_counter()
            response = client.capture.ScanBusinessCard(capture_pb2.ScanBusinessCardRequest(
                image=image, read_only=True), timeout=120)
            timings.append(time.perf_counter() - started)
            correct += any(f.name == "email" and f.value == card.email for f in response.fields)
        results["business_cards"] = {"cards": len(timings), "seconds_p50": percentile(timings, 50),
                                     "seconds_max": max(timings), "email_read_correctly": correct}
        results["capture_rss_mib"] = round(rss_mib(stack.processes[0].process.pid), 1)
        client.close()
    finally:
        stack.stop()
    return results


# (viii) ---------------------------------------------------------------------------------------------
XEDUCATION_LEAKS = ["tags", "custom.lead_quality", "custom.last_activity", "custom.last_notable_activity",
                    "custom.lead_profile", "custom.asymmetrique_activity_index", "custom.asymmetrique_profile_index",
                    "custom.asymmetrique_activity_score", "custom.asymmetrique_profile_score", "custom.lead_number"]


def _handled(db, handler: str) -> int:
    """Events scoring has handled with ``handler`` (its processed-event markers; an indexed range)."""
    from services.common.store import PROCESSED_EVENTS
    return db[PROCESSED_EVENTS].count_documents({"_id": {"$gte": f"{handler}:", "$lt": f"{handler};"}})


def _wait(predicate, limit: float = 900) -> float:
    started = time.perf_counter()
    while not predicate() and time.perf_counter() - started < limit:
        time.sleep(0.2)
    return time.perf_counter() - started


def bench_scoring(infra, table: str, admin_token: str, count: int) -> dict:
    from services.common.events import iso, make_event
    from services.common.settings import database_name
    from tests.support import EventPublisher
    declare_sink(infra.amqp_uri, "scoring")
    logs = Path(tempfile.mkdtemp(prefix="leadflow-bench-scoring-"))
    stack = Platform({**infra.env(), "LEADFLOW_AUTH_TOKENS": table, "LOG_LEVEL": "WARNING"}, logs,
                     services=("capture", "scoring"), any_free_port=True).start()
    mongo = pymongo.MongoClient(infra.mongo_uri)
    db = mongo[database_name(infra.db_prefix, "scoring")]
    publish = EventPublisher(infra.amqp_uri)
    results = {}
    try:
        stack.wait_ready()
        admin = LeadflowClient(admin_token, stack.addresses())
        now = datetime.now(timezone.utc)
        leads = [{"lead_id": str(uuid.uuid4()), "email": f"b{i}@bench{i % 300}.example.com", "title": "CTO",
                  "company_size": 50 * (i % 40), "industry": ("software", "retail", "")[i % 3], "source": "referral",
                  "company_domain": f"bench{i % 300}.example.com", "phone_e164": "", "custom_fields": {},
                  "tags": [], "captured_at": iso(now)} for i in range(count)]
        ids = [lead["lead_id"] for lead in leads]
        before = _handled(db, "handle_lead_captured")
        started = time.perf_counter()
        for lead in leads:
            publish("capture", make_event("lead_captured", {"lead_id": lead["lead_id"]}, {"lead": lead}))
        # Timed from the first publish: publishing overlaps with scoring, as with capture's relay.
        _wait(lambda: _handled(db, "handle_lead_captured") - before >= count)
        seconds = time.perf_counter() - started
        scored = _handled(db, "handle_lead_captured") - before
        results["lead_captured"] = {"events": count, "scored": scored, "seconds": seconds, "per_s": scored / seconds}
        kinds = ("page_view", "pricing_page_view", "email_open", "demo_request")
        before = _handled(db, "handle_lead_activity_recorded")
        started = time.perf_counter()
        for i in range(count):
            activity_id = f"bench:{uuid.uuid4()}"
            publish("capture", make_event("lead_activity_recorded", {"lead_id": ids[i % len(ids)],
                                                                     "activity_id": activity_id},
                                          {"type": kinds[i % 4], "url": "", "properties": {},
                                           "activity_occurred_at": iso(now), "visitor_id": "", "stitched": False}))
        _wait(lambda: _handled(db, "handle_lead_activity_recorded") - before >= count)
        seconds = time.perf_counter() - started
        results["lead_activity_recorded"] = {"events": count, "seconds": seconds, "per_s": count / seconds}
        results["get_lead_score"] = unary_profile(
            lambda r: admin.scoring.GetLeadScore(r, timeout=10),
            lambda i: scoring_pb2.GetLeadScoreRequest(lead_id=ids[i % len(ids)]), scaled(500), scaled(1000))
        if SHARED_XEDUCATION.exists():
            before = _handled(db, "handle_lead_captured")
            report, _ = import_file(admin, SHARED_XEDUCATION.read_bytes(), "xeducation", prefix="benchx:")
            waited = _wait(lambda: _handled(db, "handle_lead_captured") - before >= report.accepted)
            config = scoring_pb2.WinModelConfig(label_field="custom.converted", exclude=XEDUCATION_LEAKS)
            started = time.perf_counter()
            model = admin.scoring.TrainWinModel(scoring_pb2.TrainWinModelRequest(config=config), timeout=900).model
            rpc_seconds = time.perf_counter() - started
            results["win_model_xeducation"] = {
                "leads": report.accepted, "import_and_scoring_seconds": waited, "rpc_seconds": rpc_seconds,
                "training_seconds": model.training_seconds, "roc_auc": model.roc_auc,
                "baseline_roc_auc": model.baseline_roc_auc, "brier": model.brier,
                "in_process_seconds": in_process_training_seconds(db, config)}
        results["scoring_rss_mib"] = round(rss_mib(stack.processes[1].process.pid), 1)
        admin.close()
    finally:
        publish.close()
        mongo.close()
        stack.stop()
    return results


# (ix) -----------------------------------------------------------------------------------------------
BENCH_REPS = [(f"r{i}", ("apac", "emea")[i % 2], 1 + i % 3, ["cn", "sg"] if i % 2 == 0 else ["de", "fr"], 0)
              for i in range(8)] + [("desk", "desk", 1, [], 0)]
BENCH_POLICY = {
    "rules": [
        {"id": "hot-apac", "when": {"all": [{"field": "country", "in": ["CN", "SG"]},
                                            {"field": "score.total", "gte": 85}]},
         "team": "apac", "strategy": "least_loaded", "sla_minutes": 30},
        {"id": "apac", "when": {"field": "country", "in": ["CN", "SG"]}, "team": "apac", "match_rep": ["territory"]},
        {"id": "emea", "when": {"field": "country", "in": ["DE", "FR"]}, "team": "emea", "match_rep": ["territory"]},
    ],
    "fallback": {"team": "desk"},
}


def bench_lead(index: int) -> dict:
    from services.common.events import iso
    return {"lead_id": str(uuid.uuid4()), "country": ("CN", "SG", "DE", "FR", "US")[index % 5], "industry": "software",
            "company_size": 100 + index % 900, "source": "bench", "captured_at": iso(datetime.now(timezone.utc))}


def decisions_in_process(count: int) -> float:
    """The routing decision alone (pure, no I/O), per second: the ceiling of what a replica could do."""
    from services.routing.decision import decide
    from services.routing.domain import Rep
    from services.routing.policy import compile_policy
    policy = compile_policy(BENCH_POLICY, "bench")
    reps = {rep_id: Rep(rep_id, rep_id, team, weight=weight, territories=places)
            for rep_id, team, weight, places, _ in BENCH_REPS}
    open_leads, rotations = {}, {}
    leads = [bench_lead(i) for i in range(count)]
    started = time.perf_counter()
    for lead in leads:
        decision = decide(lead, {"total": 80}, policy, reps, open_leads, rotations, "", datetime.now(timezone.utc))
        rotations[decision.pool] = {**rotations.get(decision.pool, {}), **decision.rotation}
        open_leads[decision.rep_id] = open_leads.get(decision.rep_id, 0) + 1
    return count / (time.perf_counter() - started)


def _routing_run(infra, table: str, admin_token: str, replicas: int, count: int) -> dict:
    from services.common.events import make_event
    from tests.support import EventPublisher
    declare_sink(infra.amqp_uri, "routing")
    logs = Path(tempfile.mkdtemp(prefix=f"leadflow-bench-routing{replicas}-"))
    stack = Platform({**infra.env(), "LEADFLOW_AUTH_TOKENS": table, "LOG_LEVEL": "WARNING"}, logs,
                     services=("routing",), replicas=replicas, any_free_port=True).start()
    publish = EventPublisher(infra.amqp_uri)
    watcher = AssignmentWatcher(infra.amqp_uri)
    try:
        stack.wait_ready()
        admin = LeadflowClient(admin_token, stack.addresses())
        for rep_id, team, weight, places, capacity in BENCH_REPS:
            admin.routing.PutRep(routing_pb2.PutRepRequest(rep=routing_pb2.Rep(
                rep_id=f"bench.{rep_id}", name=rep_id, team=team, weight=weight, territories=places,
                capacity=capacity)))
        from google.protobuf import struct_pb2
        definition = struct_pb2.Struct()
        definition.update(BENCH_POLICY)
        admin.routing.PutRoutingPolicy(routing_pb2.PutRoutingPolicyRequest(definition=definition))
        time.sleep(1.5)  # every replica reads the new policy (LIVE_CHECK_SECONDS)

        def qualified(index: int) -> dict:
            lead = bench_lead(index)
            return make_event("lead_qualified", {"lead_id": lead["lead_id"]},
                              {"lead": lead, "score": {"total": 70 + index % 30}})

        events = [qualified(i) for i in range(count)]
        started = time.perf_counter()
        for event in events:
            publish("scoring", event)
        assigned = watcher.wait({e["lead_id"] for e in events}, timeout=900)
        seconds = time.perf_counter() - started
        throughput = len(assigned) / seconds
        # Latency at half that rate, open loop: qualified (published) -> lead_assigned received here, so
        # it includes the decision, the store write and the event's way out through the outbox.
        rate = throughput / 2
        paced = [qualified(i) for i in range(max(20, int(rate * 15 * SCALE)))]
        sent_at, done = {}, []
        # The watcher reads while leads are being published, so arrival times are true ones.
        reader = threading.Thread(target=lambda: done.extend(watcher.wait({e["lead_id"] for e in paced}, 300)))
        reader.start()
        start = time.perf_counter()
        for index, event in enumerate(paced):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent_at[event["lead_id"]] = time.perf_counter()
            publish("scoring", event)
        reader.join()
        latencies = [(watcher.arrived[e["lead_id"]] - sent_at[e["lead_id"]]) * 1000 for e in done]
        admin.close()
        return {"replicas": replicas, "leads": count, "assigned": len(assigned), "seconds": seconds,
                "assigned_per_s": throughput, "latency_offered_per_s": rate, "latency_leads": len(done),
                "latency_p50_ms": percentile(latencies, 50), "latency_p99_ms": percentile(latencies, 99)}
    finally:
        watcher.tap.close()
        publish.close()
        stack.stop()


def bench_routing(infra, table: str, admin_token: str, count: int) -> dict:
    return {"one_replica": _routing_run(infra, table, admin_token, 1, count),
            "three_replicas": _routing_run(infra, table, admin_token, 3, count),
            "decisions_in_process_per_s": decisions_in_process(max(1000, count))}


# (x) ----------------------------------------------------------------------------------------------
SHARED_MAVEN = Path(__file__).resolve().parents[2] / "shared" / "data" / "maven-crm-sales-opportunities"
BENCH_PIPELINE = {"id": "bench-deals", "name": "Bench deals", "allow_skip": True, "allow_backward": True,
                  "stages": [{"id": "engaging", "probability": 20, "forecast": "pipeline"},
                             {"id": "proposal", "probability": 50, "forecast": "best_case"},
                             {"id": "negotiation", "probability": 80, "forecast": "commit"}]}


def synthetic_history(rows: int) -> bytes:
    """A sales history shaped like a CRM export: half won or lost, the rest open in the first stage."""
    import csv
    import io
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["opportunity_id", "sales_agent", "product", "account", "deal_stage", "engage_date",
                     "close_date", "close_value"])
    for i in range(rows):
        stage = ("Won", "Lost", "Engaging", "Engaging")[i % 4]
        closed = stage in ("Won", "Lost")
        writer.writerow([f"H{i:07d}", f"Agent {i % 40}", ("GTX Basic", "GTX Pro", "MG Special")[i % 3],
                         f"Account {i % 900}", stage, f"2025-{1 + i % 12:02d}-{1 + i % 27:02d}",
                         f"2026-{1 + i % 10:02d}-{1 + i % 27:02d}" if closed else "",
                         str(100 + i % 5000) if stage == "Won" else ("0" if closed else "")])
    return buffer.getvalue().encode()


def bench_opportunity(infra, table: str, admin_token: str, rows: int, sequential: int, concurrent_calls: int) -> dict:
    """Opportunity alone (its events to a bounded sink): ImportOpportunities rows/s on a synthetic
    history and on the Maven history when ../shared is present, then MoveOpportunityStage latency on
    the imported open opportunities, each call moving a different one (no stage criteria in the way)."""
    from google.protobuf import struct_pb2
    from leadflow.opportunity.v1 import opportunity_pb2

    from services.cli.history import history_requests
    from services.common.messaging import consumer_queues
    from services.reporting.service import ReportingService
    from services.routing.service import RoutingService
    from services.scoring.service import ScoringService
    declare_sink(infra.amqp_uri, "opportunity", stale_queues=[
        queue for cls in (ReportingService, ScoringService, RoutingService) for queue in consumer_queues(cls)
        if queue.startswith("evt-opportunity-")])
    logs = Path(tempfile.mkdtemp(prefix="leadflow-bench-opportunity-"))
    stack = Platform({**infra.env(), "LEADFLOW_AUTH_TOKENS": table, "LOG_LEVEL": "WARNING"}, logs,
                     services=("opportunity",), any_free_port=True).start()
    results = {}
    try:
        stack.wait_ready()
        admin = LeadflowClient(admin_token, stack.addresses())
        definition = struct_pb2.Struct()
        definition.update(BENCH_PIPELINE)
        admin.opportunity.PutPipeline(opportunity_pb2.PutPipelineRequest(definition=definition))
        run = uuid.uuid4().hex[:6]

        def imported(files: dict, prefix: str, **header) -> tuple:
            started = time.perf_counter()
            report = admin.opportunity.ImportOpportunities(history_requests(
                opportunity_pb2.OpportunityImportHeader(currency="USD", external_id_prefix=prefix, **header), files),
                timeout=3600)
            return report, time.perf_counter() - started

        content = synthetic_history(rows)
        report, seconds = imported({"opportunities": content}, f"bench-{run}:", pipeline_id="bench-deals",
                                   stage_map={"Engaging": "engaging"})
        results["import_synthetic"] = {"rows": report.rows, "imported": report.imported,
                                       "rejected": report.rejected, "seconds": seconds,
                                       "rows_per_s": report.rows / seconds}
        report, seconds = imported({"opportunities": content}, f"bench-{run}:", pipeline_id="bench-deals",
                                   stage_map={"Engaging": "engaging"})
        results["reimport_synthetic"] = {"rows": report.rows, "unchanged": report.unchanged,
                                         "rows_per_s": report.rows / seconds}
        if SHARED_MAVEN.exists():
            report, seconds = imported({"opportunities": SHARED_MAVEN / "sales_pipeline.csv",
                                        "accounts": SHARED_MAVEN / "accounts.csv",
                                        "sales_teams": SHARED_MAVEN / "sales_teams.csv",
                                        "products": SHARED_MAVEN / "products.csv"}, f"maven-{run}:",
                                       stage_map={"Prospecting": "qualification", "Engaging": "discovery"})
            results["import_maven"] = {"rows": report.rows, "imported": report.imported,
                                       "rejected": report.rejected, "rows_per_s": report.rows / seconds}

        open_ids, token = [], ""
        while len(open_ids) < 20 + sequential + concurrent_calls:
            page = admin.opportunity.ListOpportunities(opportunity_pb2.ListOpportunitiesRequest(
                pipeline_id="bench-deals", stage_id="engaging",
                page=common_pb2.PageRequest(page_size=500, page_token=token)))
            open_ids += [o.opportunity_id for o in page.opportunities]
            token = page.page.next_page_token
            if not token:
                break
        moves = itertools.count()  # every call (warm-up included) moves the next opportunity

        def next_move(_index):
            n = next(moves)
            return opportunity_pb2.MoveOpportunityStageRequest(
                opportunity_id=open_ids[n % len(open_ids)], stage_id=("proposal", "engaging")[n // len(open_ids) % 2])
        results["move_stage"] = unary_profile(lambda r: admin.opportunity.MoveOpportunityStage(r, timeout=30),
                                              next_move, sequential, concurrent_calls)
        results["move_stage"]["opportunities"] = len(open_ids)
        results["opportunity_rss_mib"] = round(rss_mib(stack.processes[0].process.pid), 1)
        admin.close()
    finally:
        stack.stop()
    return results


# (xi) ---------------------------------------------------------------------------------------------

def reporting_history(leads: int, start_index: int = 0) -> list[tuple[str, dict]]:
    """Ten events per lead, as the services emit them: captured, scored, qualified, assigned, task,
    contacted, task done, an activity, converted into an opportunity, then won or lost."""
    from datetime import timedelta

    from services.common.events import iso, make_event
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    sources = ("google", "referral", "trade_show", "webinar", "linkedin")
    events = []
    for i in range(start_index, start_index + leads):
        lead_id, opportunity_id = f"bl-{i:08d}", f"bo-{i:08d}"
        rep, team = f"bench.rep{i % 40}", f"team-{i % 6}"
        at = base + timedelta(minutes=i)
        lead = {"lead_id": lead_id, "source": sources[i % 5], "medium": "cpc", "campaign": f"c{i % 12}"}
        won = i % 3 != 0
        snapshot = {"owner_id": rep, "team": team, "account_id": f"acc-{i % 2000}",
                    "account_name": f"Account {i % 2000}",
                    "product": ("GTX Basic", "GTX Pro", "MG Special")[i % 3], "pipeline_id": "new-business",
                    "currency": "USD", "amount": str(500 + i % 9000), "engaged_at": iso(at + timedelta(hours=2))}

        def event(event_type, subjects, minutes, at=at, **payload):
            return make_event(event_type, subjects, payload, occurred_at=at + timedelta(minutes=minutes))
        events += [
            ("capture", event("lead_captured", {"lead_id": lead_id}, 0, lead=lead)),
            ("scoring", event("lead_scored", {"lead_id": lead_id}, 0, score={"total": 70}, win_probability=0.5)),
            ("scoring", event("lead_qualified", {"lead_id": lead_id}, 0, lead=lead)),
            ("routing", event("lead_assigned", {"lead_id": lead_id, "rep_id": rep}, 0, team=team,
                              assigned_at=iso(at), owner_version=1)),
            ("routing", event("task_created", {"task_id": f"t-{i}", "lead_id": lead_id, "rep_id": rep}, 0,
                              due_at=iso(at + timedelta(hours=2)))),
            ("opportunity", event("lead_contacted", {"lead_id": lead_id, "rep_id": rep}, 30,
                                  contacted_at=iso(at + timedelta(minutes=30)))),
            ("routing", event("task_completed", {"task_id": f"t-{i}", "lead_id": lead_id, "rep_id": rep}, 30,
                              completed_at=iso(at + timedelta(minutes=30)))),
            ("opportunity", event("activity_logged", {"lead_id": lead_id, "activity_id": f"a-{i}"}, 31,
                                  activity_type="call", logged_by=rep)),
            ("opportunity", event("lead_converted", {"lead_id": lead_id, "opportunity_id": opportunity_id}, 120,
                                  **snapshot, status="open", stage_id="qualification", version=1,
                                  converted_at=iso(at + timedelta(hours=2)))),
            ("opportunity", event(f"opportunity_{'won' if won else 'lost'}",
                                  {"lead_id": lead_id, "opportunity_id": opportunity_id}, 60 * 24 * 20,
                                  **snapshot, status="won" if won else "lost",
                                  stage_id="closed_won" if won else "closed_lost", version=5,
                                  lost_reason="" if won else "price",
                                  closed_at=iso(at + timedelta(days=20)))),
        ]
    return events


def projected_documents(events: list) -> tuple[list, list]:
    """The lead-progress and opportunity-fact documents the projections make of ``events`` (those of
    reporting_history), written straight into the store to load a large history quickly."""
    from bson.decimal128 import Decimal128

    from services.reporting.domain import PROJECTED_MOMENTS, opportunity_fact
    progress, facts = {}, {}
    for service, event in events:
        lead_id = event.get("lead_id")
        doc = progress.setdefault(lead_id, {"_id": lead_id})
        for field, key in PROJECTED_MOMENTS.get((service, event["event_type"]), {}).items():
            doc[field] = parse_iso(event[key])
        if event["event_type"] == "lead_captured":
            doc.update({k: event["lead"][k] for k in ("source", "medium", "campaign")})
        if event["event_type"] == "lead_assigned":
            doc.update(rep_id=event["rep_id"], team=event["team"])
        if "opportunity_id" in event:
            fact = opportunity_fact(event)
            if fact["version"] >= facts.get(event["opportunity_id"], {}).get("version", 0):
                fact["amount"] = Decimal128(fact["amount"]) if fact["amount"] else None
                facts[event["opportunity_id"]] = {"_id": event["opportunity_id"], **fact,
                                                  "source": doc.get("source", "")}
    return list(progress.values()), list(facts.values())


def bench_reporting(infra, table: str, admin_token: str, events_loaded: int, rebuild_events: int,
                    live_events: int) -> dict:
    """Reporting alone. (1) ``rebuild_events`` events written into its event log and projected by
    RebuildProjections: the rebuild rate. (2) A history of ``events_loaded`` events (a tenth as many
    leads, each converted into an opportunity) loaded straight into the log and the read models, then
    GetFunnel and GetWinRate latency on it. (3) Live events through the broker projected per second."""
    from leadflow.reporting.v1 import reporting_pb2

    from services.common.settings import database_name
    from tests.support import EventPublisher
    logs = Path(tempfile.mkdtemp(prefix="leadflow-bench-reporting-"))
    stack = Platform({**infra.env(), "LEADFLOW_AUTH_TOKENS": table, "LOG_LEVEL": "WARNING",
                      "REPORTING_TIMER_SECONDS": "0.5"}, logs, services=("reporting",), any_free_port=True).start()
    db = pymongo.MongoClient(infra.mongo_uri)[database_name(infra.db_prefix, "reporting")]
    results = {}

    def log_events(batch):
        db["event_log"].insert_many([
            {"_id": e["event_id"], "event_type": e["event_type"], "source_service": service,
             "occurred_at": parse_iso(e["occurred_at"]), "lead_id": e.get("lead_id", ""),
             "opportunity_id": e.get("opportunity_id", ""), "account_id": e.get("account_id", ""),
             "payload": e} for service, e in batch], ordered=False)
    try:
        stack.wait_ready()
        admin = LeadflowClient(admin_token, stack.addresses())
        log_events(reporting_history(max(1, rebuild_events // 10)))
        started = time.perf_counter()
        job = admin.reporting.RebuildProjections(reporting_pb2.RebuildProjectionsRequest()).job
        while admin.reporting.GetRebuildJob(reporting_pb2.GetRebuildJobRequest(job_id=job.job_id)).job.status != "done":
            time.sleep(0.5)
        rebuild = time.perf_counter() - started
        results["rebuild"] = {"events": job.total, "seconds": rebuild, "events_per_s": job.total / rebuild}

        leads = max(1, events_loaded // 10)
        started = time.perf_counter()
        for first in range(max(1, rebuild_events // 10), leads, 2000):
            batch = reporting_history(min(2000, leads - first), first)
            log_events(batch)
            progress, facts = projected_documents(batch)
            db["lead_progress"].insert_many(progress, ordered=False)
            db["opportunity_facts"].insert_many(facts, ordered=False)
        results["load"] = {"seconds": time.perf_counter() - started,
                           "events": db["event_log"].estimated_document_count(),
                           "leads": db["lead_progress"].estimated_document_count(),
                           "opportunities": db["opportunity_facts"].estimated_document_count()}

        # Few calls: each reads the whole history (seconds apiece at full size on the embedded store).
        results["get_funnel"] = unary_profile(lambda r: admin.reporting.GetFunnel(r, timeout=600),
                                              lambda i: reporting_pb2.GetFunnelRequest(), 10, 4, 2, warm_up=1)
        results["get_win_rate"] = unary_profile(
            lambda r: admin.reporting.GetWinRate(r, timeout=600),
            lambda i: reporting_pb2.GetWinRateRequest(group_by=reporting_pb2.GROUP_BY_OWNER), 10, 4, 2, warm_up=1)

        publish = EventPublisher(infra.amqp_uri)
        fresh = reporting_history(max(1, live_events // 10), 10_000_000)
        started = time.perf_counter()
        for service, event in fresh:
            publish(service, event)
        # Each event looked up once by id (a count would make the embedded store read the whole log,
        # again and again, and slow down the very projection being measured).
        waiting = iter(event["event_id"] for _, event in fresh)
        pending = next(waiting, None)

        def all_logged() -> bool:
            nonlocal pending
            while pending is not None and db["event_log"].find_one({"_id": pending}, {"_id": 1}):
                pending = next(waiting, None)
            return pending is None
        _wait(all_logged)
        seconds = time.perf_counter() - started
        publish.close()
        results["projection"] = {"events": len(fresh), "seconds": seconds, "events_per_s": len(fresh) / seconds}
        results["reporting_rss_mib"] = round(rss_mib(stack.processes[0].process.pid), 1)
        admin.close()
    finally:
        stack.stop()
    return results


def in_process_training_seconds(db, config) -> float:
    """The same training on the same leads in this process, without the service around it."""
    from collections import Counter

    from services.scoring import win_model
    from services.scoring.mappers import training_config_from_proto
    training = training_config_from_proto(config)
    examples = []
    for document in db["lead_scores"].find({"lead.external_id": {"$gte": "benchx:", "$lt": "benchx;"}}):
        label = win_model.label_of(document["lead"], "", training)
        if label is not None:
            counts = Counter(b["type"] for b in document.get("behaviour", []))
            examples.append(win_model.Example(document["lead"], counts, label, document["lead"].get("captured_at", "")))
    started = time.perf_counter()
    win_model.train(examples, training)
    return time.perf_counter() - started


# (xiv) --------------------------------------------------------------------------------------------

def bench_log_masking(size: int) -> dict:
    """Masking personal data in a log line must cost time in proportion to its length: a value without
    '@', a value of nothing but '@'s, and ordinary text with emails and phones, each ``size`` characters;
    against one pass of a plain regular expression over the same text, measured in the same run."""
    import re

    from services.common.logs import mask_personal_data
    texts = {
        "no_at": "x" * size,
        "all_at": "@" * size,
        "mixed": ("call li.na@haier-robotics.cn or +86 138 0013 8000 about the demo; " * (size // 64 + 1))[:size],
    }
    baseline_pattern = re.compile(r"[^\s]+")
    results = {"characters": size}
    for name, text in texts.items():
        started = time.perf_counter()
        masked = mask_personal_data(text)
        results[f"{name}_seconds"] = time.perf_counter() - started
        results[f"{name}_changed"] = masked != text
        started = time.perf_counter()
        sum(1 for _ in baseline_pattern.finditer(text))
        results[f"{name}_baseline_seconds"] = time.perf_counter() - started
    return results


# (xiii) -------------------------------------------------------------------------------------------

def _transactions(http_ports: dict) -> tuple[float, float]:
    """(transactions committed, transaction attempts run again) summed over every service's /metrics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families
    committed = retried = 0.0
    for port in http_ports.values():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "leadflow_store_transactions_total":
                    committed += sample.value
                elif sample.name == "leadflow_store_transaction_retries_total":
                    retried += sample.value
    return committed, retried


def bench_busy(infra, table: str, admin_token: str, leads: int, rows: int) -> dict:
    """The platform at work: a history import alone, then the same import while scoring rescores every
    lead with a live win model (its new scores flowing on as events); health and /readyz of every
    service asked every 100 ms throughout, and the transactions run again for conflicts counted."""
    from leadflow.opportunity.v1 import opportunity_pb2

    from services.cli.history import history_requests
    from services.common.settings import database_name
    from tests.load import HealthProber, history_file, seed_scored_leads
    logs = Path(tempfile.mkdtemp(prefix="leadflow-bench-busy-"))
    stack = Platform({**infra.env(), "LEADFLOW_AUTH_TOKENS": table, "LOG_LEVEL": "WARNING"}, logs,
                     any_free_port=True).start()
    mongo = pymongo.MongoClient(infra.mongo_uri)
    results = {}
    try:
        stack.wait_ready()
        admin = LeadflowClient(admin_token, stack.addresses())
        http_ports = {p.service: p.http_port for p in stack.processes}
        seed_scored_leads(mongo[database_name(infra.db_prefix, "scoring")], leads)
        model = admin.scoring.TrainWinModel(scoring_pb2.TrainWinModelRequest(
            config=scoring_pb2.WinModelConfig(label_field="custom.won")), timeout=900).model
        content = history_file(rows)

        def imported(prefix: str) -> float:
            started = time.perf_counter()
            report = admin.opportunity.ImportOpportunities(history_requests(
                opportunity_pb2.OpportunityImportHeader(currency="USD", external_id_prefix=prefix,
                                                        stage_map={"Engaging": "discovery"}),
                {"opportunities": content}), timeout=3600)
            assert report.imported == rows, report
            return rows / (time.perf_counter() - started)

        results["import_idle_rows_per_s"] = imported("idle:")
        settle(stack)
        committed_before, retried_before = _transactions(http_ports)
        prober = HealthProber(admin, http_ports)
        prober.start()
        started = time.perf_counter()
        job = admin.scoring.RescoreLeads(scoring_pb2.RescoreLeadsRequest()).job
        results["import_busy_rows_per_s"] = imported("busy:")
        while not admin.scoring.GetRescoreJob(scoring_pb2.GetRescoreJobRequest(job_id=job.job_id)).job.done:
            time.sleep(0.5)
        rescore_seconds = time.perf_counter() - started
        settle(stack)
        prober.stop()
        committed, retried = _transactions(http_ports)
        results.update({
            "leads": leads, "rows": rows, "win_model_training_seconds": model.training_seconds,
            "rescore_seconds": rescore_seconds, "rescored_per_s": leads / rescore_seconds,
            "probe_rounds": prober.rounds, "probe_failures": len(prober.failures),
            "slowest_probe_ms": prober.slowest * 1000,
            "transactions": committed - committed_before, "transaction_retries": retried - retried_before,
            "retries_per_10k_transactions": 10_000 * (retried - retried_before) / max(committed - committed_before, 1),
            "broker_connection_lost": sum(p.log_path.read_text(errors="replace").count("Connection to broker lost")
                                          for p in stack.processes)})
        admin.close()
    finally:
        mongo.close()
        stack.stop()
    return results


def main() -> None:
    admin_token, integration_token = new_token(), new_token()
    table = ",".join((token_entry(Principal("bench-admin", Role.ADMIN, "hq"), admin_token),
                      token_entry(Principal("bench-integration", Role.INTEGRATION, "hq"), integration_token)))
    results = {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": host.platform(),
                           "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30)},
               "scale": SCALE}
    print("(xiv) log masking ...", flush=True)
    results["log_masking"] = bench_log_masking(1_000_000)
    with Sandbox("bench") as infra:
        print("(i) broker ...", flush=True)
        results["broker"] = bench_broker(infra.amqp_uri, scaled(5000))
        print("(ii) store ...", flush=True)
        results["store"] = bench_store(infra.mongo_uri, scaled(2000))

        logs = Path(tempfile.mkdtemp(prefix="leadflow-bench-logs-"))
        stack = Platform({**infra.env(), "LEADFLOW_AUTH_TOKENS": table, "LOG_LEVEL": "WARNING"}, logs,
                         any_free_port=True, gateway=True).start()
        try:
            stack.wait_ready()
            client = LeadflowClient(integration_token, stack.addresses())
            admin = client.with_token(admin_token)
            for rep in ("amy", "bo", "chen", "dana"):
                admin.routing.PutRep(routing_pb2.PutRepRequest(rep=routing_pb2.Rep(
                    rep_id=f"bench.{rep}", name=rep.title(), team="bench")))
            watcher = AssignmentWatcher(infra.amqp_uri)

            print("(v) gRPC unary latency ...", flush=True)
            # Baselines first, on an idle platform: the same RPC through nameko-grpc and plain grpcio.
            results["grpc_health_check_nameko"] = unary_profile(
                lambda r: client.health("capture").Check(r, timeout=10), lambda i: health_pb2.HealthCheckRequest(),
                scaled(500), scaled(2000))
            results["grpc_health_check_plain_grpcio"] = plain_grpcio_baseline(scaled(500), scaled(2000))
            batch = f"u{uuid.uuid4().hex[:6]}"
            results["grpc_submit_lead"] = unary_profile(
                client.capture.SubmitLead, lambda i: lead_request(batch, i), scaled(500), scaled(1000))
            settle(stack)

            print("(iii) pipeline throughput ...", flush=True)
            results["pipeline"] = bench_pipeline(client, watcher, scaled(1500))
            settle(stack)
            rate = results["pipeline"]["leads_assigned_per_s"] / 2
            print(f"(iv) latency at {rate:.0f} leads/s ...", flush=True)
            results["latency_at_half_load"] = bench_latency_at_load(client, watcher, rate, 20 * SCALE)
            results["rss_mib"] = {p.label: round(rss_mib(p.process.pid), 1) for p in stack.processes}
            settle(stack)
            print("(xii) HTTP/JSON gateway ...", flush=True)
            results["gateway"] = bench_gateway(stack.gateway.url, client, integration_token, scaled(500), scaled(2000))
            client.close()
            admin.close()
        finally:
            stack.stop()
        print("(vii) capture bulk channels ...", flush=True)
        results["capture_bulk"] = bench_capture_bulk(infra, table, integration_token, scaled(100_000))
        print("(viii) scoring ...", flush=True)
        results["scoring"] = bench_scoring(infra, table, admin_token, scaled(3000))
        print("(ix) routing, one and three replicas ...", flush=True)
        results["routing"] = bench_routing(infra, table, admin_token, scaled(2000))
        print("(x) opportunity: history import and stage moves ...", flush=True)
        results["opportunity"] = bench_opportunity(infra, table, admin_token, scaled(50_000), scaled(500),
                                                   scaled(2000))
        print("(xi) reporting: rebuild, reports on a large history, projection ...", flush=True)
        results["reporting"] = bench_reporting(infra, table, admin_token, scaled(1_000_000), scaled(20_000),
                                               scaled(5_000))
        print("(xiii) a busy platform: rescore and history import at once, probes every 100 ms ...", flush=True)
        results["busy"] = bench_busy(infra, table, admin_token, scaled(10_000), scaled(5_000))

    b, s, p = results["broker"], results["store"], results["pipeline"]
    nameko_check, grpcio_check = results["grpc_health_check_nameko"], results["grpc_health_check_plain_grpcio"]
    results["ratios"] = {
        "pipeline_to_broker_publish": p["leads_assigned_per_s"] / b["publish_confirmed_per_s"],
        "pipeline_to_store_insert_one": p["leads_assigned_per_s"] / s["insert_one_per_s"],
        "nameko_to_grpcio_unary_p50": nameko_check["p50_ms"] / grpcio_check["p50_ms"],
        "submit_lead_to_grpcio_unary_p50": results["grpc_submit_lead"]["p50_ms"] / grpcio_check["p50_ms"],
        "import_rows_to_store_insert_many_docs": results["capture_bulk"]["import_synthetic"]["rows_per_s"]
        / s["insert_many_docs_per_s"],
        "import_rows_to_store_insert_many_same_lead_docs": results["capture_bulk"]["import_synthetic"]["rows_per_s"]
        / results["capture_bulk"]["store_same_lead_documents"]["docs_per_s"],
        "scored_lead_captured_to_broker_consume": results["scoring"]["lead_captured"]["per_s"] / b["consume_per_s"],
        "scored_activities_to_broker_consume": results["scoring"]["lead_activity_recorded"]["per_s"]
        / b["consume_per_s"],
        "get_lead_score_to_grpcio_unary_p99": results["scoring"]["get_lead_score"]["p99_ms"] / grpcio_check["p99_ms"],
        "routing_three_to_one_replica": results["routing"]["three_replicas"]["assigned_per_s"]
        / results["routing"]["one_replica"]["assigned_per_s"],
        "routing_three_replicas_to_broker_consume": results["routing"]["three_replicas"]["assigned_per_s"]
        / b["consume_per_s"],
        "routing_three_replicas_to_pure_decision": results["routing"]["three_replicas"]["assigned_per_s"]
        / results["routing"]["decisions_in_process_per_s"],
        "import_opportunities_rows_to_store_insert_many_docs":
            results["opportunity"]["import_synthetic"]["rows_per_s"] / s["insert_many_docs_per_s"],
        "move_stage_to_grpcio_unary_p99": results["opportunity"]["move_stage"]["p99_ms"] / grpcio_check["p99_ms"],
        "projection_to_broker_consume": results["reporting"]["projection"]["events_per_s"] / b["consume_per_s"],
        "rebuild_to_broker_consume": results["reporting"]["rebuild"]["events_per_s"] / b["consume_per_s"],
        "get_win_rate_to_grpcio_unary_p99": results["reporting"]["get_win_rate"]["p99_ms"] / grpcio_check["p99_ms"],
        "mask_1mb_without_at_to_one_regex_pass": results["log_masking"]["no_at_seconds"]
        / results["log_masking"]["no_at_baseline_seconds"],
        "mask_1mb_of_at_to_one_regex_pass": results["log_masking"]["all_at_seconds"]
        / results["log_masking"]["all_at_baseline_seconds"],
        "import_busy_to_idle": results["busy"]["import_busy_rows_per_s"] / results["busy"]["import_idle_rows_per_s"],
        "slowest_probe_busy_to_health_p99_idle": results["busy"]["slowest_probe_ms"] / nameko_check["p99_ms"],
        "gateway_get_lead_to_grpc_get_lead_p50": results["gateway"]["http_get_lead"]["p50_ms"]
        / results["gateway"]["grpc_get_lead"]["p50_ms"],
        "gateway_get_lead_to_grpc_get_lead_throughput": results["gateway"]["http_get_lead"]["per_s_at_16"]
        / results["gateway"]["grpc_get_lead"]["per_s_at_16"],
    }
    if "win_model_xeducation" in results["scoring"]:
        win = results["scoring"]["win_model_xeducation"]
        results["ratios"]["train_win_model_rpc_to_in_process"] = win["rpc_seconds"] / win["in_process_seconds"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    print_table(results)


def routing_row(run: dict) -> tuple:
    label = f"(ix)  routing, {run['replicas']} replica{'s' if run['replicas'] > 1 else ''}"
    return label, (f"{run['assigned_per_s']:,.0f} assignments/s ({run['assigned']:,}/{run['leads']:,}); "
                   f"qualified->assigned p50 {run['latency_p50_ms']:.0f} / p99 {run['latency_p99_ms']:.0f} ms "
                   f"at {run['latency_offered_per_s']:.0f}/s")


def print_table(r: dict) -> None:
    b, s, p, lat = r["broker"], r["store"], r["pipeline"], r["latency_at_half_load"]
    sub, nk, gr = r["grpc_submit_lead"], r["grpc_health_check_nameko"], r["grpc_health_check_plain_grpcio"]
    bulk = r["capture_bulk"]
    imp, cards = bulk["import_synthetic"], bulk["business_cards"]
    sc = r["scoring"]
    get = sc["get_lead_score"]
    opp = r["opportunity"]
    rep = r["reporting"]
    rows = [
        ("(i)   RabbitMQ persistent publish, confirmed", f"{b['publish_confirmed_per_s']:,.0f} msg/s"),
        ("(i)   RabbitMQ consume + ack", f"{b['consume_per_s']:,.0f} msg/s"),
        ("(ii)  SecantusDB insert_one", f"{s['insert_one_per_s']:,.0f} docs/s"),
        ("(ii)  SecantusDB insert_many", f"{s['insert_many_docs_per_s']:,.0f} docs/s"),
        ("(iii) pipeline, leads fully assigned", f"{p['leads_assigned_per_s']:,.1f} leads/s "
                                                f"({p['assigned']}/{p['leads']} in {p['seconds']:.1f} s)"),
        ("(iv)  capture->assignment at half load", f"p50 {lat['p50_ms']:.0f} / p95 {lat['p95_ms']:.0f} / "
                                                  f"p99 {lat['p99_ms']:.0f} ms at {lat['offered_leads_per_s']:.0f}/s"),
        ("(v)   SubmitLead sequential", f"p50 {sub['p50_ms']:.2f} / p99 {sub['p99_ms']:.2f} ms"),
        ("(v)   SubmitLead at 16 callers", f"{sub['per_s_at_16']:,.0f} calls/s"),
        ("(v)   health check, nameko-grpc", f"p50 {nk['p50_ms']:.2f} / p99 {nk['p99_ms']:.2f} ms, "
                                           f"{nk['per_s_at_16']:,.0f}/s at 16"),
        ("(v)   health check, plain grpcio", f"p50 {gr['p50_ms']:.2f} / p99 {gr['p99_ms']:.2f} ms, "
                                            f"{gr['per_s_at_16']:,.0f}/s at 16"),
        ("(vii) ImportLeadFile, 100k-row CSV", f"{imp['rows_per_s']:,.0f} rows/s ({imp['accepted']:,} new, "
                                               f"{imp['rejected']} rejected, {imp['seconds']:.1f} s)"),
        ("(vii) store alone, insert_many of those lead docs", f"{bulk['store_same_lead_documents']['docs_per_s']:,.0f} "
                                                               "docs/s (same indexes, 500 per call)"),
        ("(vii) the same file again", f"{bulk['reimport_synthetic']['rows_per_s']:,.0f} rows/s "
                                      f"({bulk['reimport_synthetic']['unchanged']:,} unchanged)"),
        *([("(vii) ImportLeadFile, X Education export", f"{bulk['import_xeducation']['rows_per_s']:,.0f} rows/s "
                                                       f"({bulk['import_xeducation']['accepted']:,} new)")]
          if "import_xeducation" in bulk else []),
        ("(vii) ScanBusinessCard", f"p50 {cards['seconds_p50']:.2f} s/card, max {cards['seconds_max']:.2f} s "
                                   f"({cards['email_read_correctly']}/{cards['cards']} emails right)"),
        ("(viii) lead_captured scored end to end", f"{sc['lead_captured']['per_s']:,.0f} events/s "
                                                  f"({sc['lead_captured']['scored']:,} leads)"),
        ("(viii) lead_activity_recorded scored", f"{sc['lead_activity_recorded']['per_s']:,.0f} events/s"),
        ("(viii) GetLeadScore", f"p50 {get['p50_ms']:.2f} / p99 {get['p99_ms']:.2f} ms, "
                                f"{get['per_s_at_16']:,.0f}/s at 16"),
        *([("(viii) TrainWinModel, X Education", f"{win['rpc_seconds']:.1f} s over gRPC "
                                                 f"({win['training_seconds']:.1f} s training; "
                                                 f"{win['in_process_seconds']:.1f} s in-process), "
                                                 f"ROC-AUC {win['roc_auc']:.3f} vs naive Bayes "
                                                 f"{win['baseline_roc_auc']:.3f}, {win['leads']:,} leads")]
          if (win := sc.get("win_model_xeducation")) else []),
        *[routing_row(run) for run in (r["routing"]["one_replica"], r["routing"]["three_replicas"])],
        ("(ix)  routing decision alone, in process", f"{r['routing']['decisions_in_process_per_s']:,.0f} decisions/s"),
        ("(x)   ImportOpportunities, synthetic history", f"{opp['import_synthetic']['rows_per_s']:,.0f} rows/s "
                                                         f"({opp['import_synthetic']['imported']:,} imported, "
                                                         f"{opp['import_synthetic']['seconds']:.1f} s)"),
        ("(x)   the same history again", f"{opp['reimport_synthetic']['rows_per_s']:,.0f} rows/s "
                                         f"({opp['reimport_synthetic']['unchanged']:,} unchanged)"),
        *([("(x)   ImportOpportunities, Maven history", f"{opp['import_maven']['rows_per_s']:,.0f} rows/s "
                                                        f"({opp['import_maven']['imported']:,} imported, 4 files)")]
          if "import_maven" in opp else []),
        ("(x)   MoveOpportunityStage", f"p50 {opp['move_stage']['p50_ms']:.2f} / p99 {opp['move_stage']['p99_ms']:.2f} "
                                       f"ms, {opp['move_stage']['per_s_at_16']:,.0f}/s at 16"),
        ("(xi)  RebuildProjections", f"{rep['rebuild']['events']:,} events in {rep['rebuild']['seconds']:.0f} s "
                                     f"({rep['rebuild']['events_per_s']:,.0f} events/s)"),
        ("(xi)  history loaded for the queries", f"{rep['load']['events']:,} events, {rep['load']['leads']:,} leads, "
                                                 f"{rep['load']['opportunities']:,} opportunities"),
        ("(xi)  GetFunnel on that history", f"p50 {rep['get_funnel']['p50_ms']:.0f} / p99 "
                                            f"{rep['get_funnel']['p99_ms']:.0f} ms"),
        ("(xi)  GetWinRate by owner on that history", f"p50 {rep['get_win_rate']['p50_ms']:.0f} / p99 "
                                                      f"{rep['get_win_rate']['p99_ms']:.0f} ms"),
        ("(xi)  live events projected", f"{rep['projection']['events_per_s']:,.0f} events/s "
                                        f"({rep['projection']['events']:,} events)"),
        *[(f"(xii) GetLead, {label}", f"p50 {g['p50_ms']:.2f} / p99 {g['p99_ms']:.2f} ms, "
                                       f"{g['per_s_at_16']:,.0f}/s at 16")
          for label, g in (("gRPC direct", r["gateway"]["grpc_get_lead"]),
                           ("HTTP/JSON via gateway", r["gateway"]["http_get_lead"]),
                           ("gateway /healthz alone", r["gateway"]["http_healthz"]))],
        ("(xiii) history import, idle / while rescoring", f"{r['busy']['import_idle_rows_per_s']:,.0f} / "
                                                          f"{r['busy']['import_busy_rows_per_s']:,.0f} rows/s"),
        ("(xiii) rescore with a live win model", f"{r['busy']['rescored_per_s']:,.0f} leads/s "
                                                 f"({r['busy']['leads']:,} in {r['busy']['rescore_seconds']:.0f} s)"),
        ("(xiii) probes meanwhile (health + /readyz)", f"slowest {r['busy']['slowest_probe_ms']:.0f} ms, "
                                                      f"{r['busy']['probe_failures']} failed of "
                                                      f"{r['busy']['probe_rounds'] * 10:,}"),
        ("(xiii) transactions run again for conflicts", f"{r['busy']['retries_per_10k_transactions']:.1f} per 10,000 "
                                                        f"({r['busy']['transaction_retries']:,.0f} of "
                                                        f"{r['busy']['transactions']:,.0f})"),
        ("(xiv) masking a 1,000,000-character log value", "without '@' {:.3f} s, only '@' {:.3f} s, text with "
                                                          "emails and phones {:.3f} s".format(
                                                              r["log_masking"]["no_at_seconds"],
                                                              r["log_masking"]["all_at_seconds"],
                                                              r["log_masking"]["mixed_seconds"])),
        ("(vi)  RSS per service", ", ".join(f"{k.split('#')[0]} {v:.0f}" for k, v in r["rss_mib"].items()) + " MiB"),
    ] + [(f"ratio {name}", f"{value:.3f}") for name, value in r["ratios"].items()]
    width = max(len(label) for label, _ in rows)
    print()
    for label, value in rows:
        print(f"{label:{width}}  {value}")
    print(f"\nwritten to {RESULTS / 'latest.json'}")


if __name__ == "__main__":
    main()
