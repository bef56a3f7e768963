"""Load that the busy-platform test and the benchmark share: years of scored leads written straight
into scoring's store, a sales history file, and a prober that asks every service's health while the
platform works. For processes without eventlet (end-to-end tests, the benchmark)."""
import random
import threading
import time
import urllib.request
import uuid

import grpc
from grpc_health.v1 import health_pb2

from services.cli.client import STUBS
from services.common.events import utcnow
from services.scoring.models import LeadScoreDocument

# Known outcomes that depend on the source, so a win model has something to learn.
WON_SHARE = {"google": 0.3, "newsletter": 0.1, "event": 0.5, "cold_list": 0.05}


def seed_scored_leads(scoring_db, count: int, seed: int = 7) -> None:
    """Leads the built-in model scores low (no title, no company size, free mail), already scored, with a
    custom ``won`` field to train on — what a platform with a history holds, without capturing each."""
    rng = random.Random(seed)
    now = utcnow()
    scores = scoring_db["lead_scores"]
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
    """A sales history in the Maven columns: a third won, a third lost, a third open."""
    lines = ["opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value"]
    for i in range(rows):
        stage, closed, value = (("Won", "2017-03-01", 1000 + i) if i % 3 == 0 else ("Lost", "2017-02-01", 0)
                                if i % 3 == 1 else ("Engaging", "", ""))
        lines.append(f"B{i},Agent {i % 17},GTX Pro,Account {i % 211},{stage},2016-10-20,{closed},{value}")
    return ("\r\n".join(lines) + "\r\n").encode()


class HealthProber(threading.Thread):
    """Every ``every`` seconds, gRPC health and /readyz of every service, each with a ``timeout`` deadline;
    keeps the failures and the slowest answer."""

    def __init__(self, client, http_ports: dict, every: float = 0.1, timeout: float = 1.0):
        super().__init__(daemon=True)
        self.client, self.http_ports, self.every, self.timeout = client.with_token(""), http_ports, every, timeout
        self.failures, self.slowest, self.rounds = [], 0.0, 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            for service in STUBS:
                self._check(service, "gRPC health", self._grpc_health)
                self._check(service, "/readyz", self._readyz)
            self.rounds += 1
            self.stopping.wait(self.every)

    def _check(self, service: str, probe: str, ask) -> None:
        started = time.monotonic()
        problem = ask(service)
        self.slowest = max(self.slowest, time.monotonic() - started)
        if problem:
            self.failures.append(f"{service} {probe}: {problem}")

    def _grpc_health(self, service: str) -> str:
        try:
            answer = self.client.health(service).Check(health_pb2.HealthCheckRequest(), timeout=self.timeout)
        except grpc.RpcError as error:
            return error.code().name
        return "" if answer.status == health_pb2.HealthCheckResponse.SERVING else str(answer.status)

    def _readyz(self, service: str) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_ports[service]}/readyz",
                                        timeout=self.timeout) as response:
                return "" if response.status == 200 else str(response.status)
        except OSError as error:
            return str(error)

    def stop(self) -> None:
        self.stopping.set()
        self.join()
        self.client.close()
