"""(ix) Routing on a routing-only platform, one replica and then three: lead_qualified events (published
as scoring's relay would) assigned per second under a policy of rules, territories, weights and
capacities, and qualification -> assignment latency p50/p99 at half that rate (against the pure
decision alone, in this process, and the raw broker's consume rate)."""
import threading
import time
import uuid
from datetime import datetime, timezone

from leadflow.routing.v1 import routing_pb2

from bench.common import SCALE, AssignmentWatcher, declare_sink, logs_dir, percentile
from services.cli.client import LeadflowClient
from services.devstack.supervisor import Platform

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
    logs = logs_dir(f"routing{replicas}")
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
