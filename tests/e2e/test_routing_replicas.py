"""Three routing processes consume one stream of qualified leads at once. Together they must act as
one router: every lead assigned exactly once (redeliveries included), weights honoured to the lead,
a capacity never exceeded, and every replica doing part of the work."""
import re
import urllib.request
import uuid
from collections import Counter

import pymongo
import pytest
from leadflow.routing.v1 import routing_pb2

from services.cli.client import LeadflowClient
from services.common.events import iso, make_event, utcnow
from services.common.settings import database_name
from services.devstack.sandbox import Sandbox
from services.devstack.supervisor import Platform
from services.routing.decision import decide
from services.routing.domain import Rep
from services.routing.policy import builtin_definition, compile_policy
from tests.support import EventPublisher, EventTap, wait_until

LEADS = 300
REDELIVERED = 50
WEIGHTS = {"amy": 2, "bo": 1, "chen": 1, "dana": 1}
CAPACITY = {"dana": 10}


@pytest.fixture(scope="module")
def three_routers(tokens, tmp_path_factory):
    with Sandbox("route3") as infra:
        env = {**infra.env(), "LEADFLOW_AUTH_TOKENS": tokens.table, "LOG_LEVEL": "WARNING",
               "OUTBOX_POLL_SECONDS": "0.2"}
        platform = Platform(env, tmp_path_factory.mktemp("route3-logs"), services=("routing",), replicas=3,
                            any_free_port=True).start()
        try:
            platform.wait_ready(timeout=120)
            yield platform, infra
        finally:
            platform.stop()


def expected_distribution() -> Counter:
    """What one router alone would do with the same reps: the pure decision, lead after lead."""
    policy = compile_policy(builtin_definition(120), "builtin")
    reps = {rep_id: Rep(rep_id, rep_id, "t", weight=weight, capacity=CAPACITY.get(rep_id, 0))
            for rep_id, weight in WEIGHTS.items()}
    open_leads, rotations, chosen = Counter(), {}, Counter()
    for index in range(LEADS):
        decision = decide({"lead_id": str(index)}, {}, policy, reps, open_leads, rotations, "", utcnow())
        rotations[decision.pool] = {**rotations.get(decision.pool, {}), **decision.rotation}
        open_leads[decision.rep_id] += 1
        chosen[decision.rep_id] += 1
    return chosen


def handled_by(process) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{process.http_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    pattern = r'leadflow_events_handled_total\{[^}]*handler="handle_lead_qualified"[^}]*outcome="ok"[^}]*\} (\S+)'
    return sum(float(value) for value in re.findall(pattern, text))


def test_three_replicas_assign_each_lead_once_by_weight_within_capacity(three_routers, tokens):
    platform, infra = three_routers
    admin = LeadflowClient(tokens["admin"], platform.addresses())
    for rep_id, weight in WEIGHTS.items():
        admin.routing.PutRep(routing_pb2.PutRepRequest(rep=routing_pb2.Rep(
            rep_id=rep_id, name=rep_id.title(), team="t", weight=weight, capacity=CAPACITY.get(rep_id, 0))))
    sink = EventTap(infra.amqp_uri, "routing", ("#",))  # stands in for the services that consume routing's events
    publish = EventPublisher(infra.amqp_uri)
    events = []
    for _ in range(LEADS):
        lead_id = str(uuid.uuid4())
        lead = {"lead_id": lead_id, "captured_at": iso(utcnow()), "source": "replicas", "country": "CN"}
        events.append(make_event("lead_qualified", {"lead_id": lead_id}, {"lead": lead, "score": {"total": 75}}))
    for event in events + events[:REDELIVERED]:
        publish("scoring", event)

    # Each assignment emits lead_assigned, task_created and notification_requested.
    assert wait_until(lambda: sink.collect(3 * LEADS, timeout=1) and len(sink.of_type("lead_assigned")) >= LEADS,
                      timeout=180), f"{len(sink.of_type('lead_assigned'))} of {LEADS} leads assigned"
    sink.settle(1.0)
    assigned = sink.of_type("lead_assigned")
    database = pymongo.MongoClient(infra.mongo_uri)[database_name(infra.db_prefix, "routing")]

    assert sorted(e["lead_id"] for e in assigned) == sorted(e["lead_id"] for e in events)  # once each
    assert database["assignments"].count_documents({}) == LEADS
    assert database["tasks"].count_documents({}) == LEADS
    assert Counter(e["rep_id"] for e in assigned) == expected_distribution()
    assert Counter(e["rep_id"] for e in assigned)["dana"] == CAPACITY["dana"]
    listed = {r.rep_id: r.open_leads for r in admin.routing.ListReps(routing_pb2.ListRepsRequest()).reps}
    assert listed == dict(Counter(e["rep_id"] for e in assigned))
    shares = [handled_by(process) for process in platform.of("routing")]
    assert all(share > 0 for share in shares), f"every replica routes: {shares}"
    assert sum(shares) >= LEADS
    publish.close()
    sink.close()
    admin.close()
