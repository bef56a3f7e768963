"""(xv) Imports at volume on a busy platform, run on its own (`make bench-volume`, about half an hour at
BENCH_SCALE=1): a 100,000-row lead file (`ImportLeadFile`) and a 100,000-row sales history
(`ImportOpportunities`) sent at the same time through the running platform, while the imported leads'
events flow on through scoring, routing, opportunity and reporting. Each import is followed as the
CLI follows it (`GetImportProgress` every 0.5 s); health and /readyz of every service are asked every
100 ms. The baseline, measured in the same run just before on the same platform, is each import of
5,000 rows alone. Writes bench/results/volume.json."""
import json
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import grpc
from leadflow.capture.v1 import capture_pb2
from leadflow.common.v1 import common_pb2
from leadflow.opportunity.v1 import opportunity_pb2
from leadflow.routing.v1 import routing_pb2

from bench.busy import _transactions
from bench.capture import lead_file_requests, synthetic_lead_file
from bench.common import RESULTS, scaled
from services.cli.client import LeadflowClient
from services.cli.history import history_requests
from services.common.auth import Principal, Role, new_token, token_entry
from services.devstack.sandbox import Sandbox
from services.devstack.supervisor import Platform
from tests.load import HealthProber, history_file


class FollowedImport(threading.Thread):
    """One import sent through the platform, its progress asked for every 0.5 s while it runs."""

    def __init__(self, label: str, call, requests, get_progress, import_id: str):
        super().__init__(daemon=True)
        self.label, self.call, self.requests, self.get_progress = label, call, requests, get_progress
        self.import_id = import_id
        self.report, self.error, self.seconds = None, "", 0.0
        self.polls, self.slowest_poll, self.last_progress = 0, 0.0, None

    def run(self):
        started = time.perf_counter()
        future = self.call.future(self.requests, timeout=7200)
        while not future.done():
            asked = time.perf_counter()
            try:
                self.last_progress = self.get_progress(self.import_id)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    self.error = f"GetImportProgress answered {exc.code().name}: {exc.details()}"
            self.polls += 1
            self.slowest_poll = max(self.slowest_poll, time.perf_counter() - asked)
            time.sleep(0.5)
        self.seconds = time.perf_counter() - started
        try:
            self.report = future.result()
        except grpc.RpcError as exc:
            self.error = f"{exc.code().name}: {exc.details()}"
        self.last_progress = self.get_progress(self.import_id)


def lead_import(client, content: bytes, source: str) -> FollowedImport:
    import_id = uuid.uuid4().hex
    messages = lead_file_requests(content, attribution=common_pb2.Attribution(source=source), import_id=import_id)
    return FollowedImport("leads", client.capture.ImportLeadFile, iter(messages),
                          lambda i: client.capture.GetImportProgress(
                              capture_pb2.GetImportProgressRequest(import_id=i)).progress, import_id)


def history_import(client, content: bytes, prefix: str) -> FollowedImport:
    import_id = uuid.uuid4().hex
    header = opportunity_pb2.OpportunityImportHeader(currency="USD", external_id_prefix=prefix,
                                                     stage_map={"Engaging": "discovery"}, import_id=import_id)
    return FollowedImport("history", client.opportunity.ImportOpportunities,
                          history_requests(header, {"opportunities": content}),
                          lambda i: client.opportunity.GetImportProgress(
                              opportunity_pb2.GetImportProgressRequest(import_id=i)).progress, import_id)


def run_all(*imports: FollowedImport) -> None:
    for followed in imports:
        followed.start()
    for followed in imports:
        followed.join()


def summary(followed: FollowedImport, rows: int) -> dict:
    report, progress = followed.report, followed.last_progress
    stored = (report.accepted + report.merged + report.unchanged) if followed.label == "leads" and report \
        else (report.imported + report.unchanged) if report else 0
    return {"rows": rows, "seconds": round(followed.seconds, 1), "rows_per_s": round(rows / followed.seconds, 1),
            "stored": stored, "error": followed.error, "progress_polls": followed.polls,
            "slowest_progress_answer_ms": round(followed.slowest_poll * 1000, 1),
            "progress_at_the_end": {"state": common_pb2.ImportState.Name(progress.state),
                                    "rows_read": progress.rows_read, "rows_stored": progress.rows_stored}
            if progress else None}


def main() -> None:
    admin_token = new_token()
    table = token_entry(Principal("bench-admin", Role.ADMIN, "hq"), admin_token)
    rows, baseline_rows = scaled(100_000), scaled(5_000)
    results = {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rows": rows}
    with Sandbox("volume") as infra:
        logs = Path(tempfile.mkdtemp(prefix="leadflow-bench-volume-"))
        stack = Platform({**infra.env(), "LEADFLOW_AUTH_TOKENS": table, "LOG_LEVEL": "WARNING"}, logs,
                         any_free_port=True).start()
        try:
            stack.wait_ready()
            admin = LeadflowClient(admin_token, stack.addresses())
            for rep in ("amy", "bo", "chen", "dana"):
                admin.routing.PutRep(routing_pb2.PutRepRequest(rep=routing_pb2.Rep(
                    rep_id=f"bench.{rep}", name=rep.title(), team="bench")))
            http_ports = {p.service: p.http_port for p in stack.processes}

            print(f"baseline: each import of {baseline_rows:,} rows alone ...", flush=True)
            for followed, content_rows in ((lead_import(admin, synthetic_lead_file(baseline_rows), "baseline"),
                                            baseline_rows),
                                           (history_import(admin, history_file(baseline_rows), "baseline:"),
                                            baseline_rows)):
                run_all(followed)
                results[f"baseline_{followed.label}"] = summary(followed, content_rows)
            time.sleep(5)

            print(f"volume: {rows:,} leads and {rows:,} deals at once, probes every 100 ms ...", flush=True)
            committed_before, retried_before = _transactions(http_ports)
            prober = HealthProber(admin, http_ports)
            prober.start()
            leads = lead_import(admin, synthetic_lead_file(rows), "volume")
            deals = history_import(admin, history_file(rows), "volume:")
            run_all(leads, deals)
            prober.stop()
            committed, retried = _transactions(http_ports)
            results["volume_leads"], results["volume_history"] = summary(leads, rows), summary(deals, rows)
            results.update({
                "probe_rounds": prober.rounds, "probe_failures": len(prober.failures),
                "first_probe_failures": prober.failures[:10], "slowest_probe_ms": round(prober.slowest * 1000, 1),
                "transactions": committed - committed_before, "transaction_retries": retried - retried_before,
                "retries_per_10k_transactions": round(
                    10_000 * (retried - retried_before) / max(committed - committed_before, 1), 2),
                "broker_connection_lost": sum(p.log_path.read_text(errors="replace").count("Connection to broker lost")
                                              for p in stack.processes)})
            results["ratios"] = {
                "leads_volume_busy_to_baseline": results["volume_leads"]["rows_per_s"]
                / results["baseline_leads"]["rows_per_s"],
                "history_volume_busy_to_baseline": results["volume_history"]["rows_per_s"]
                / results["baseline_history"]["rows_per_s"]}
            admin.close()
        finally:
            stack.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "volume.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
