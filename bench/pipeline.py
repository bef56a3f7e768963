"""(iii) End-to-end pipeline throughput: leads/s captured -> scored -> assigned, over gRPC; (iv) capture ->
assignment latency p50/p95/p99 at a fixed offered load of half of (iii). Both on the platform of the
whole pipeline (bench.common.pipeline_platform)."""
import concurrent.futures
import threading
import time
import uuid

from bench.common import lead_request, percentile
from services.common.events import parse_iso


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
