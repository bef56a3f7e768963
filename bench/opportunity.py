"""(x) Opportunity on an opportunity-only platform: ImportOpportunities rows/s on a synthetic history
(against the raw store's insert_many docs/s) and on the Maven history when ../shared is present, and
MoveOpportunityStage p50/p99 (against plain grpcio's health check)."""
import itertools
import time
import uuid

from leadflow.common.v1 import common_pb2

from bench.common import SHARED_DATA, declare_sink, logs_dir, rss_mib, unary_profile
from services.cli.client import LeadflowClient
from services.devstack.supervisor import Platform

SHARED_MAVEN = SHARED_DATA / "maven-crm-sales-opportunities"
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
    logs = logs_dir("opportunity")
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
