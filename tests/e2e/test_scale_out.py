"""Scale-out on one machine: two replicas of every service share the broker and the stores as
competing consumers. 1,000 leads are each captured, scored, assigned and reported exactly once,
and stopping one replica of each service mid-stream loses nothing."""
import concurrent.futures
import itertools
import threading
import uuid
from collections import defaultdict

import grpc
import pymongo
import pytest
from leadflow.routing.v1 import routing_pb2

from services.cli.client import LeadflowClient
from services.common.settings import database_name
from services.devstack.sandbox import Sandbox
from services.devstack.supervisor import Platform
from tests.e2e.conftest import qualifying_lead
from tests.support import EventTap, wait_until

LEADS = 1000


@pytest.fixture(scope="module")
def two_of_everything(tokens, tmp_path_factory):
    with Sandbox("scale") as infra:
        env = {**infra.env(), "LEADFLOW_AUTH_TOKENS": tokens.table, "LOG_LEVEL": "WARNING"}
        platform = Platform(env, tmp_path_factory.mktemp("scale-logs"), replicas=2, any_free_port=True).start()
        try:
            platform.wait_ready(timeout=120)
            yield platform, infra
        finally:
            platform.stop()


def test_two_replicas_of_everything_process_each_lead_exactly_once(two_of_everything, tokens):
    platform, infra = two_of_everything
    capture_addresses = [f"127.0.0.1:{p.grpc_port}" for p in platform.of("capture")]
    clients = [LeadflowClient(tokens["integration"], {**platform.addresses(), "capture": address})
               for address in capture_addresses]
    admin = clients[0].with_token(tokens["admin"])
    for rep_id in ("scale.amy", "scale.bo", "scale.chen"):
        admin.routing.PutRep(routing_pb2.PutRepRequest(rep=routing_pb2.Rep(rep_id=rep_id, name=rep_id, team="t")))
    taps = {event_type: EventTap(infra.amqp_uri, service, (event_type,)) for service, event_type in
            (("capture", "lead_captured"), ("scoring", "lead_scored"), ("routing", "lead_assigned"))}
    batch = f"scale{uuid.uuid4().hex[:6]}"
    requests = [qualifying_lead(i, batch) for i in range(LEADS)]
    for request in requests:
        request.lead.attribution.source = batch  # reporting's projection is found by source
    stopped = threading.Event()

    def submit(index: int) -> str:
        # Spread callers over both capture replicas; when one goes away, retry on the other with
        # the same idempotency key, as a client behind a load balancer would.
        for client in itertools.islice(itertools.cycle(clients), index % 2, index % 2 + 4):
            try:
                return client.capture.SubmitLead(requests[index], timeout=10).lead.lead_id
            except grpc.RpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
        raise AssertionError(f"lead {index} could not be submitted to any capture replica")

    def stop_one_replica_of_each():
        assert len(taps["lead_assigned"].collect(LEADS // 4, timeout=120)) >= LEADS // 4
        for service in ("capture", "scoring", "routing", "opportunity", "reporting"):
            platform.of(service)[1].stop(grace=10)
        stopped.set()

    stopper = threading.Thread(target=stop_one_replica_of_each)
    stopper.start()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        lead_ids = list(pool.map(submit, range(LEADS)))
    stopper.join(timeout=180)
    assert stopped.is_set(), "the replicas were not stopped while leads were flowing"

    assert len(set(lead_ids)) == LEADS
    assigned = taps["lead_assigned"]
    assert wait_until(lambda: _leads(assigned.collect(LEADS, timeout=1)) >= set(lead_ids), timeout=240)
    for tap in taps.values():
        tap.settle(2.0)

    for event_type, tap in taps.items():
        event_ids = defaultdict(set)
        for event in tap.received:
            event_ids[event["lead_id"]].add(event["event_id"])
        assert [lead for lead in lead_ids if len(event_ids[lead]) != 1] == [], f"{event_type} not exactly once"
    mongo = pymongo.MongoClient(infra.mongo_uri)
    assert mongo[database_name(infra.db_prefix, "capture")]["leads"].count_documents({"source": batch}) == LEADS
    assert mongo[database_name(infra.db_prefix, "routing")]["tasks"].count_documents(
        {"lead_id": {"$in": lead_ids}}) == LEADS
    progress = mongo[database_name(infra.db_prefix, "reporting")]["lead_progress"]
    assert wait_until(lambda: progress.count_documents({"source": batch, "assigned_at": {"$ne": None}}) == LEADS,
                      timeout=60)
    for tap in taps.values():
        tap.close()
    for client in (*clients, admin):
        client.close()


def _leads(events) -> set:
    return {e["lead_id"] for e in events}
