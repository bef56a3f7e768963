"""(xiii) A busy platform (all five services): a history import alone, then the same import while
scoring rescores every lead with a live win model; health and /readyz of every service asked every
100 ms throughout, and the store transactions run again for conflicts counted."""
import time

import pymongo
from leadflow.scoring.v1 import scoring_pb2

from bench.common import logs_dir, settle
from services.cli.client import LeadflowClient
from services.devstack.supervisor import Platform


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
    logs = logs_dir("busy")
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
