"""A busy platform still answers its probes: while scoring rescores every lead with a live win model
(and the new scores flow on to reporting as events) and opportunity imports a sales history, every
service answers gRPC health and /readyz within a second, polled every 100 ms; no consumer loses its
broker connection; the rescore and the import finish.

The leads are written straight into scoring's store (what years of captured leads leave behind):
capturing them one by one would only make the test slower, not busier where it matters."""
import os
import random
import threading
import time
import urllib.request
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2
from leadflow.opportunity.v1 import opportunity_pb2
from leadflow.scoring.v1 import scoring_pb2

from services.cli.client import STUBS
from services.cli.history import history_requests
from services.common.events import utcnow
from services.scoring.models import LeadScoreDocument
from tests.e2e.conftest import own_platform
from tests.support import wait_until

# 10,000 leads as a platform with a real history holds take ~2 minutes to rescore here; make test runs
# fewer to stay inside its budget (LEADFLOW_BUSY_LEADS=10000 runs the full size).
LEADS = int(os.environ.get("LEADFLOW_BUSY_LEADS", "4000"))
HISTORY_ROWS = 3_000
PROBE_EVERY_SECONDS = 0.1
PROBE_TIMEOUT_SECONDS = 1.0
WON_SHARE = {"google": 0.3, "newsletter": 0.1, "event": 0.5, "cold_list": 0.05}


def seed_leads(platform, count: int) -> None:
    """Leads the built-in model scores low (no title, no company size, free mail), with known outcomes
    that depend on their source, so a win model can be trained on them."""
    rng = random.Random(7)
    now = utcnow()
    scores = platform.db("scoring")["lead_scores"]
    batch = []
    for _ in range(count):
        source = rng.choice(list(WON_SHARE))
        lead_id = str(uuid.uuid4())
        lead = {"lead_id": lead_id, "email": f"{lead_id[:8]}@gmail.com", "source": source, "company_size": 0,
                "country": rng.choice(["DE", "US", "CN"]), "captured_at": "2026-01-05T10:00:00.000Z",
                "custom_fields": {"won": "yes" if rng.random() < WON_SHARE[source] else "no"}, "tags": []}
        batch.append(LeadScoreDocument(id=lead_id, lead=lead, scored_at=now, model_version="builtin").to_mongo())
        if len(batch) == 1_000:
            scores.insert_many(batch)
            batch = []
    if batch:
        scores.insert_many(batch)


def history_file(rows: int) -> bytes:
    lines = ["opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value"]
    for i in range(rows):
        stage, closed, value = (("Won", "2017-03-01", 1000 + i) if i % 3 == 0 else ("Lost", "2017-02-01", 0)
                                if i % 3 == 1 else ("Engaging", "", ""))
        lines.append(f"B{i},Agent {i % 17},GTX Pro,Account {i % 211},{stage},2016-10-20,{closed},{value}")
    return ("\r\n".join(lines) + "\r\n").encode()


class Prober(threading.Thread):
    """Every PROBE_EVERY_SECONDS, gRPC health and /readyz of every service, each with a one-second deadline."""

    def __init__(self, platform):
        super().__init__(daemon=True)
        self.client = platform.client("admin").with_token("")
        self.http_ports = {p.service: p.http_port for p in platform.platform.processes}
        self.failures, self.slowest, self.rounds = [], 0.0, 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            for service in STUBS:
                started = time.monotonic()
                try:
                    answer = self.client.health(service).Check(health_pb2.HealthCheckRequest(),
                                                               timeout=PROBE_TIMEOUT_SECONDS)
                    if answer.status != health_pb2.HealthCheckResponse.SERVING:
                        self.failures.append(f"{service} gRPC health: {answer.status}")
                except grpc.RpcError as error:
                    self.failures.append(f"{service} gRPC health: {error.code().name}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.http_ports[service]}/readyz",
                                                timeout=PROBE_TIMEOUT_SECONDS) as response:
                        if response.status != 200:
                            self.failures.append(f"{service} /readyz: {response.status}")
                except OSError as error:
                    self.failures.append(f"{service} /readyz: {error}")
                self.slowest = max(self.slowest, time.monotonic() - started)
            self.rounds += 1
            self.stopping.wait(PROBE_EVERY_SECONDS)

    def stop(self):
        self.stopping.set()
        self.join()
        self.client.close()


@pytest.fixture(scope="module")
def busy_platform(infra, tokens, tmp_path_factory):
    with own_platform(infra, tokens, tmp_path_factory.mktemp("busy-logs"), "busy") as running:
        yield running


@pytest.mark.timeout(900)
def test_every_service_answers_its_probes_while_scoring_rescores_and_opportunity_imports(busy_platform):
    platform = busy_platform
    admin = platform.client("admin")
    seed_leads(platform, LEADS)
    trained = admin.scoring.TrainWinModel(scoring_pb2.TrainWinModelRequest(
        config=scoring_pb2.WinModelConfig(label_field="custom.won")), timeout=300).model
    assert trained.status == "live" and trained.examples == LEADS

    prober = Prober(platform)
    prober.start()
    job = admin.scoring.RescoreLeads(scoring_pb2.RescoreLeadsRequest()).job
    imported = admin.opportunity.ImportOpportunities(history_requests(
        opportunity_pb2.OpportunityImportHeader(currency="USD", external_id_prefix="busy:",
                                                stage_map={"Engaging": "discovery"}),
        {"opportunities": history_file(HISTORY_ROWS)}), timeout=600)

    def rescored():
        return admin.scoring.GetRescoreJob(scoring_pb2.GetRescoreJobRequest(job_id=job.job_id)).job.done
    assert wait_until(rescored, timeout=600, interval=1)
    prober.stop()

    assert (imported.imported, imported.rejected) == (HISTORY_ROWS, 0)
    scores = platform.db("scoring")["lead_scores"]
    assert scores.count_documents({"win_model_version": trained.version}) == LEADS
    assert prober.rounds > 10 and not prober.failures, prober.failures[:20]
    for process in platform.platform.processes:
        log = process.log_path.read_text(errors="replace")
        assert "Connection to broker lost" not in log, process.label
    admin.close()
