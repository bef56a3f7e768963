"""(vii) Capture's bulk channels on a capture-only platform: ImportLeadFile rows/s on a 100,000-row CSV
(against the raw store's insert_many docs/s in the same run, and the store alone writing the same lead
documents), the real X Education export when ../shared is present, and ScanBusinessCard seconds per
card (Tesseract OCR). The lead file builders are shared with (viii) and the volume section (xv)."""
import time
import uuid

import pymongo
from leadflow.capture.v1 import capture_pb2
from leadflow.common.v1 import common_pb2

from bench.common import SHARED_DATA, cpu_seconds, declare_sink, logs_dir, percentile, rss_mib
from services.cli.client import LeadflowClient
from services.devstack.supervisor import Platform

SHARED_XEDUCATION = SHARED_DATA / "xeducation-leads" / "train.csv"


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


def index_costs(infra, count: int) -> dict:
    """What each secondary index of the lead collection costs per lead on the embedded store: the
    documents the import wrote, inserted 500 per insert_many into a collection with no secondary
    index, with each index alone, and with all of them. Also the search terms a lead carries (the
    search_terms index holds one entry per term)."""
    from services.capture.models import LeadDocument
    from services.common.settings import database_name
    client = pymongo.MongoClient(infra.mongo_uri)
    source = client[database_name(infra.db_prefix, "capture")]["leads"]
    documents = list(source.find({}).limit(count))
    specs = [spec["fields"] for spec in LeadDocument._meta["index_specs"]]
    variants = [("none", [])] + [("+".join(field for field, _ in spec), [spec]) for spec in specs] + [("all", specs)]
    timings = {}
    for name, indexes in variants:
        scratch = client["leadflow_bench"][f"leads_{len(timings)}"]
        scratch.drop()
        for spec in indexes:
            scratch.create_index(spec)
        fresh = [{**doc, "_id": str(uuid.uuid4())} for doc in documents]
        started = time.perf_counter()
        for start in range(0, len(fresh), 500):
            scratch.insert_many(fresh[start:start + 500])
        timings[name] = (time.perf_counter() - started) / max(len(fresh), 1) * 1e6
        scratch.drop()
    client.close()
    terms = [len(doc.get("search_terms") or ()) for doc in documents]
    return {"documents": len(documents), "microseconds_per_lead": timings,
            "added_microseconds_per_lead": {name: value - timings["none"] for name, value in timings.items()
                                            if name != "none"},
            "search_terms_per_lead": sum(terms) / max(len(terms), 1)}


def bench_capture_bulk(infra, table: str, integration_token: str, rows: int) -> dict:
    """Capture alone, so the leads it imports do not start 100,000 pipelines; its events go to a
    bounded sink queue (the cost of publishing them is part of the import, as in production)."""
    declare_sink(infra.amqp_uri, "capture", stale_queues=(
        "evt-capture-lead_captured--scoring.handle_lead_captured",
        "evt-capture-lead_captured--reporting.handle_lead_captured",
        "evt-capture-lead_merged--reporting.handle_lead_merged"))
    logs = logs_dir("capture")
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
        results["lead_index_costs"] = index_costs(infra, min(report.accepted, 10_000))
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
