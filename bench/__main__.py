"""``make bench``: Leadflow's benchmark (not a test). One run measures, on this machine:

  (i)   raw RabbitMQ: persistent publishes with confirms, and consumes, msgs/s             bench/broker.py
  (ii)  raw store: SecantusDB insert_one/s (and insert_many docs/s for reference)          bench/store.py
  (iii) end-to-end pipeline throughput: leads/s captured -> scored -> assigned, over gRPC   bench/pipeline.py
  (iv)  capture -> assignment latency p50/p95/p99 at a fixed offered load of half of (iii)  bench/pipeline.py
  (v)   gRPC SubmitLead latency p50/p99 sequential and throughput at 16 concurrent callers, bench/unary.py
        against a plain grpcio server's health check measured in the same run
  (vi)  resident memory of each service                                                    bench/memory.py
  (vii) capture's bulk channels on a capture-only platform: ImportLeadFile rows/s on a     bench/capture.py
        100,000-row CSV (against the raw store's insert_many docs/s in the same run), the real X Education
        export when ../shared is present, and ScanBusinessCard seconds per card (Tesseract OCR)
  (viii) scoring on a capture + scoring platform: lead_captured and lead_activity_recorded bench/scoring.py
        events scored per second end to end (published as capture's relay would, counted once stored;
        against the raw broker's consume rate), GetLeadScore p50/p99 (against plain grpcio's health
        check), and TrainWinModel on the X Education export imported through capture (against the same
        training run in this process on the same leads)
  (ix)  routing on a routing-only platform, one replica and then three: lead_qualified     bench/routing.py
        events (published as scoring's relay would) assigned per second under a policy of rules,
        territories, weights and capacities, and qualification -> assignment latency p50/p99 at half
        that rate (against the pure decision alone, in this process, and the raw broker's consume rate)
  (x)   opportunity on an opportunity-only platform: ImportOpportunities rows/s on a       bench/opportunity.py
        synthetic history (against the raw store's insert_many docs/s) and on the Maven history when
        ../shared is present, and MoveOpportunityStage p50/p99 (against plain grpcio's health check)
  (xi)  reporting on a reporting-only platform: a history of 1,000,000 events (100,000     bench/reporting.py
        leads and opportunities) loaded by RebuildProjections (BENCH_REPORTING_LOAD=rebuild, the
        default; events/s) or straight into the store (=straight, after a rebuild of 20,000 events);
        then the manager dashboard's eight calls and nine rarer ones, p50/p99 each (against plain
        grpcio's health check), and the dashboard page in headless Chromium through the gateway (when
        the console is built: `make console`); then live events projected per second through the
        broker (against the raw broker's consume rate)
  (xii) the HTTP/JSON gateway on the platform of (iii): GetLead p50/p99 and calls/s at 16  bench/gateway.py
        callers through POST /api/v1/capture/GetLead, against the same GetLead over gRPC directly and
        the gateway's own /healthz (no backend call), all in the same run
  (xiii) a busy platform: a history import alone and again while scoring rescores every    bench/busy.py
        lead with a live win model, probes every 100 ms, transactions run again for conflicts
  (xiv) masking personal data in megabyte log values (no platform)                         bench/masking.py
  (xvi) time to last assignment on the platform of (iii): a 10,000-row and a 100,000-row   bench/import_to_assignment.py
        CSV of qualifying leads imported through ImportLeadFile, from the import's start to the last
        lead_assigned (BENCH_IMPORT_ROWS=10000 picks the sizes), with leads/s end to end
  (xvii) the event stream on a reporting-only platform: 20,000 events published through    bench/event_stream.py
        the broker and stored, then read from the earliest position by one subscriber and by ten at
        once (events/s, against the raw broker's consume rate), and publish -> delivered latency
        p50/p99 for a subscriber following the stream live at 20 events/s

(xv), imports at volume, runs on its own: python -m bench.volume (bench/volume.py).

Every figure that depends on the machine is also given as a ratio to a baseline measured in the
same run, because these machines are noisy. Prints a table and writes bench/results/latest.json.
Sizes can be scaled with BENCH_SCALE (default 1.0).

BENCH_SECTIONS (``make bench SECTIONS=xi``) runs only the sections it names, comma-separated Roman
numerals (``i,ii,xi``); (iv) paces itself by (iii)'s rate, so it brings (iii) along. A section whose
ratio needs the raw broker (i) or plain grpcio's health check (v) measures that baseline itself when
its section is not asked for; any other ratio is given only when both its sides ran. The platform of
the whole pipeline starts only for (iii), (iv), (v), (vi) or (xii). Such a run prints the rows of its
sections and writes bench/results/sections-<names>.json (sections-xi.json, sections-i-ii-xi.json).
"""
import os
import platform as host
import sys
from contextlib import nullcontext
from datetime import datetime, timezone

from bench.broker import bench_broker
from bench.busy import bench_busy
from bench.capture import bench_capture_bulk
from bench.common import (RESULTS, SCALE, make_tokens, pipeline_platform, plain_grpcio_baseline, scaled, settle,
                          write_json)
from bench.event_stream import bench_event_stream
from bench.gateway import bench_gateway
from bench.import_to_assignment import bench_time_to_last_assignment
from bench.import_to_assignment import sizes as import_sizes
from bench.masking import bench_log_masking
from bench.memory import bench_memory
from bench.opportunity import bench_opportunity
from bench.pipeline import bench_latency_at_load, bench_pipeline
from bench.reporting import bench_reporting, load_mode
from bench.routing import bench_routing
from bench.scoring import bench_scoring
from bench.store import bench_store
from bench.unary import bench_unary
from services.devstack.sandbox import Sandbox

SECTIONS = ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii", "xiii", "xiv", "xvi", "xvii")
PIPELINE_PLATFORM = ("v", "iii", "iv", "vi", "xii", "xvi")  # in the order they run on it
# Sections with a ratio to the raw broker's rates (i) or to plain grpcio's health check (v).
NEEDS_BROKER = ("iii", "viii", "ix", "xi", "xvii")
NEEDS_GRPCIO = ("viii", "x", "xi")


def requested_sections(text: str) -> list[str]:
    """BENCH_SECTIONS as the sections to run, in the benchmark's order; empty for all."""
    names = [name.strip().strip("()").strip().lower() for name in text.replace(" ", ",").split(",")]
    names = [name for name in names if name]
    if not names:
        return list(SECTIONS)
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        sys.exit(f"BENCH_SECTIONS: no section {', '.join(unknown)}; the sections are {', '.join(SECTIONS)} "
                 "(run (xv) with python -m bench.volume)")
    if "iv" in names:
        names.append("iii")  # (iv) is paced at half of (iii)'s rate
    return [name for name in SECTIONS if name in names]


def main() -> None:
    sections = requested_sections(os.environ.get("BENCH_SECTIONS", ""))
    full = len(sections) == len(SECTIONS)
    asked = set(sections)
    if "xi" in asked:
        load_mode()  # a wrong BENCH_REPORTING_LOAD stops the run before anything is measured
    tokens = make_tokens()
    admin_token, integration_token, table = tokens.admin, tokens.integration, tokens.table
    results = {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": host.platform(),
                           "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30)},
               "scale": SCALE}
    if not full:
        results["sections"] = sections
    # Baselines measured for a section's ratios when their own section is not asked for.
    baselines = {"broker": [s for s in NEEDS_BROKER if s in asked] if "i" not in asked else [],
                 "grpc_health_check_plain_grpcio": [s for s in NEEDS_GRPCIO if s in asked] if "v" not in asked else []}
    baselines = {name: needed for name, needed in baselines.items() if needed}
    if baselines:
        results["baselines_measured_for"] = baselines
    if "xiv" in asked:
        print("(xiv) log masking ...", flush=True)
        results["log_masking"] = bench_log_masking(1_000_000)
    with Sandbox("bench") if asked - {"xiv"} else nullcontext() as infra:
        if "i" in asked or "broker" in baselines:
            print("(i) broker ..." if "i" in asked else "(i) broker, as the baseline of "
                  + ", ".join(f"({s})" for s in baselines["broker"]) + " ...", flush=True)
            results["broker"] = bench_broker(infra.amqp_uri, scaled(5000))
        if "ii" in asked:
            print("(ii) store ...", flush=True)
            results["store"] = bench_store(infra.mongo_uri, scaled(2000))
        if "grpc_health_check_plain_grpcio" in baselines:
            print("plain grpcio's health check, as the baseline of "
                  + ", ".join(f"({s})" for s in baselines["grpc_health_check_plain_grpcio"]) + " ...", flush=True)
            results["grpc_health_check_plain_grpcio"] = plain_grpcio_baseline(scaled(500), scaled(2000))

        if asked & set(PIPELINE_PLATFORM):
            with pipeline_platform(infra, tokens) as platform:
                stack, client, watcher = platform.stack, platform.client, platform.watcher
                first = True
                for section in (s for s in PIPELINE_PLATFORM if s in asked):
                    if not first and section != "vi":
                        settle(stack)
                    first = False
                    if section == "v":
                        print("(v) gRPC unary latency ...", flush=True)
                        results.update(bench_unary(client))
                    elif section == "iii":
                        print("(iii) pipeline throughput ...", flush=True)
                        results["pipeline"] = bench_pipeline(client, watcher, scaled(1500))
                    elif section == "iv":
                        # BENCH_LATENCY_RATE offers a fixed rate instead, to compare runs at one load.
                        rate = float(os.environ.get("BENCH_LATENCY_RATE") or 0) \
                            or results["pipeline"]["leads_assigned_per_s"] / 2
                        print(f"(iv) latency at {rate:.0f} leads/s ...", flush=True)
                        results["latency_at_half_load"] = bench_latency_at_load(client, watcher, rate, 20 * SCALE)
                    elif section == "vi":
                        results["rss_mib"] = bench_memory(stack)
                    elif section == "xii":
                        print("(xii) HTTP/JSON gateway ...", flush=True)
                        results["gateway"] = bench_gateway(stack.gateway.url, client, integration_token,
                                                           scaled(500), scaled(2000))
                    elif section == "xvi":
                        results["import_to_assignment"] = {}
                        for rows in import_sizes():
                            print(f"(xvi) {rows:,} rows imported, time to the last assignment ...", flush=True)
                            settle(stack)
                            results["import_to_assignment"][str(rows)] = bench_time_to_last_assignment(
                                client, watcher, rows)
        if "vii" in asked:
            print("(vii) capture bulk channels ...", flush=True)
            results["capture_bulk"] = bench_capture_bulk(infra, table, integration_token, scaled(100_000))
        if "viii" in asked:
            print("(viii) scoring ...", flush=True)
            results["scoring"] = bench_scoring(infra, table, admin_token, scaled(3000))
        if "ix" in asked:
            print("(ix) routing, one and three replicas ...", flush=True)
            results["routing"] = bench_routing(infra, table, admin_token, scaled(2000))
        if "x" in asked:
            print("(x) opportunity: history import and stage moves ...", flush=True)
            results["opportunity"] = bench_opportunity(infra, table, admin_token, scaled(50_000), scaled(500),
                                                       scaled(2000))
        if "xi" in asked:
            print("(xi) reporting: a large history loaded, the dashboard's reports on it, projection ...",
                  flush=True)
            results["reporting"] = bench_reporting(infra, table, admin_token, scaled(1_000_000), scaled(20_000),
                                                   scaled(5_000), tokens.manager)
        if "xvii" in asked:
            print("(xvii) the event stream: stored, read by one and by ten subscribers, followed live ...",
                  flush=True)
            results["event_stream"] = bench_event_stream(infra, table, integration_token, scaled(20_000))
        if "xiii" in asked:
            print("(xiii) a busy platform: rescore and history import at once, probes every 100 ms ...",
                  flush=True)
            results["busy"] = bench_busy(infra, table, admin_token, scaled(10_000), scaled(5_000))

    results["ratios"] = ratios(results)
    path = RESULTS / ("latest.json" if full else f"sections-{'-'.join(sections)}.json")
    write_json(path, results)
    print_table(results, path)


# Ratios: (name, numerator, denominator), each a path into the results; a ratio is given only when
# both sides were measured in this run.
RATIOS = [
    ("pipeline_to_broker_publish", ("pipeline", "leads_assigned_per_s"), ("broker", "publish_confirmed_per_s")),
    ("pipeline_to_store_insert_one", ("pipeline", "leads_assigned_per_s"), ("store", "insert_one_per_s")),
    ("nameko_to_grpcio_unary_p50", ("grpc_health_check_nameko", "p50_ms"),
     ("grpc_health_check_plain_grpcio", "p50_ms")),
    ("submit_lead_to_grpcio_unary_p50", ("grpc_submit_lead", "p50_ms"), ("grpc_health_check_plain_grpcio", "p50_ms")),
    ("import_rows_to_store_insert_many_docs", ("capture_bulk", "import_synthetic", "rows_per_s"),
     ("store", "insert_many_docs_per_s")),
    ("import_rows_to_store_insert_many_same_lead_docs", ("capture_bulk", "import_synthetic", "rows_per_s"),
     ("capture_bulk", "store_same_lead_documents", "docs_per_s")),
    ("scored_lead_captured_to_broker_consume", ("scoring", "lead_captured", "per_s"), ("broker", "consume_per_s")),
    ("scored_activities_to_broker_consume", ("scoring", "lead_activity_recorded", "per_s"),
     ("broker", "consume_per_s")),
    ("get_lead_score_to_grpcio_unary_p99", ("scoring", "get_lead_score", "p99_ms"),
     ("grpc_health_check_plain_grpcio", "p99_ms")),
    ("routing_three_to_one_replica", ("routing", "three_replicas", "assigned_per_s"),
     ("routing", "one_replica", "assigned_per_s")),
    ("routing_three_replicas_to_broker_consume", ("routing", "three_replicas", "assigned_per_s"),
     ("broker", "consume_per_s")),
    ("routing_three_replicas_to_pure_decision", ("routing", "three_replicas", "assigned_per_s"),
     ("routing", "decisions_in_process_per_s")),
    ("import_opportunities_rows_to_store_insert_many_docs", ("opportunity", "import_synthetic", "rows_per_s"),
     ("store", "insert_many_docs_per_s")),
    ("move_stage_to_grpcio_unary_p99", ("opportunity", "move_stage", "p99_ms"),
     ("grpc_health_check_plain_grpcio", "p99_ms")),
    ("projection_to_broker_consume", ("reporting", "projection", "events_per_s"), ("broker", "consume_per_s")),
    ("rebuild_to_broker_consume", ("reporting", "rebuild", "events_per_s"), ("broker", "consume_per_s")),
    ("stream_one_subscriber_to_broker_consume", ("event_stream", "one_subscriber", "events_per_s"),
     ("broker", "consume_per_s")),
    ("stream_ten_subscribers_to_broker_consume", ("event_stream", "ten_subscribers", "events_per_s"),
     ("broker", "consume_per_s")),
    "reporting calls",  # each report's p99 to plain grpcio's (see report_ratios)
    ("mask_1mb_without_at_to_one_regex_pass", ("log_masking", "no_at_seconds"),
     ("log_masking", "no_at_baseline_seconds")),
    ("mask_1mb_of_at_to_one_regex_pass", ("log_masking", "all_at_seconds"), ("log_masking", "all_at_baseline_seconds")),
    ("import_busy_to_idle", ("busy", "import_busy_rows_per_s"), ("busy", "import_idle_rows_per_s")),
    ("slowest_probe_busy_to_health_p99_idle", ("busy", "slowest_probe_ms"), ("grpc_health_check_nameko", "p99_ms")),
    ("gateway_get_lead_to_grpc_get_lead_p50", ("gateway", "http_get_lead", "p50_ms"),
     ("gateway", "grpc_get_lead", "p50_ms")),
    ("gateway_get_lead_to_grpc_get_lead_throughput", ("gateway", "http_get_lead", "per_s_at_16"),
     ("gateway", "grpc_get_lead", "per_s_at_16")),
    ("train_win_model_rpc_to_in_process", ("scoring", "win_model_xeducation", "rpc_seconds"),
     ("scoring", "win_model_xeducation", "in_process_seconds")),
    ("train_win_model_100k_to_xeducation_seconds", ("scoring", "win_model_large", "rpc_seconds"),
     ("scoring", "win_model_xeducation", "rpc_seconds")),
]


def report_ratios(results: dict) -> list:
    return [(f"reporting_{key}_p99_to_grpcio_unary_p99", ("reporting", "calls", key, "p99_ms"),
             ("grpc_health_check_plain_grpcio", "p99_ms"))
            for key in results.get("reporting", {}).get("calls", {})]


def _at(results: dict, path: tuple):
    for key in path:
        results = results[key]
    return results


def ratios(results: dict) -> dict:
    found = {}
    for entry in RATIOS:
        for name, numerator, denominator in (report_ratios(results) if entry == "reporting calls" else [entry]):
            try:
                found[name] = _at(results, numerator) / _at(results, denominator)
            except KeyError:
                continue  # one side was not measured in this run
    return found


# The table ---------------------------------------------------------------------------------------------
def routing_row(run: dict) -> tuple:
    label = f"(ix)  routing, {run['replicas']} replica{'s' if run['replicas'] > 1 else ''}"
    return label, (f"{run['assigned_per_s']:,.0f} assignments/s ({run['assigned']:,}/{run['leads']:,}); "
                   f"qualified->assigned p50 {run['latency_p50_ms']:.0f} / p99 {run['latency_p99_ms']:.0f} ms "
                   f"at {run['latency_offered_per_s']:.0f}/s")


def ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def reporting_rows(rep: dict, ratios: dict) -> list:
    history, load, rebuild = rep["history"], rep["load"], rep["rebuild"]
    rows = [
        ("(xi)  history", f"{history['leads']:,} leads from {history['first_capture']} to {history['today']} "
                          f"(today; quarter {history['quarter'][0]}..{history['quarter'][1]}), "
                          f"{history['open_opportunities']:,} opportunities open"),
        ("(xi)  RebuildProjections" + (" of the whole log" if load["mode"] == "rebuild" else ""),
         f"{rebuild['events']:,} events in {rebuild['seconds']:.0f} s ({rebuild['events_per_s']:,.0f} events/s)"
         + (f"; replayed in {rebuild['replay_seconds']:.0f} s, then the roll-ups" if "replay_seconds" in rebuild
            else "")),
        *([("(xi)  roll-ups rebuilt from the records", "{records:,} records in {seconds:.0f} s ({records_per_s:,.0f} "
            "records/s)".format(**rep["rollups_from_records"]))] if "rollups_from_records" in rep else []),
        (f"(xi)  history loaded ({load['mode']})", f"{load['events']:,} events, {load['leads']:,} leads, "
                                                   f"{load['opportunities']:,} opportunities "
                                                   f"in {load['seconds']:.0f} s"),
    ]
    for key, call in rep["calls"].items():
        ratio = ratios.get(f"reporting_{key}_p99_to_grpcio_unary_p99")
        rows.append((f"(xi)  {'dashboard' if call['group'] == 'dashboard' else 'rarer'}: {call['rpc']}, "
                     f"{call['label']}",
                     f"p50 {ms(call['p50_ms'])} / p99 {ms(call['p99_ms'])} ms"
                     + (f", p99 {ratio:,.0f}x grpcio's" if ratio is not None else "") + f" ({call['calls']} calls)"))
    if (browser := rep.get("dashboard_browser")) is not None:
        rows.append(("(xi)  the manager's dashboard in headless Chromium, navigation to every chart drawn",
                     f"not timed: {browser['skipped']}" if "skipped" in browser else
                     f"median {browser['median_ms']:,.0f} ms, slowest {browser['max_ms']:,.0f} ms "
                     f"({len(browser['runs_ms'])} page loads, {browser['charts']} charts)"))
    rows.append(("(xi)  live events projected", f"{rep['projection']['events_per_s']:,.0f} events/s "
                                                f"({rep['projection']['events']:,} events)"))
    return rows


def print_table(r: dict, path) -> None:
    baselines = r.get("baselines_measured_for", {})

    def baseline_note(name: str) -> str:
        return f" [baseline of {', '.join(f'({s})' for s in baselines[name])}]" if name in baselines else ""
    rows = []
    if (b := r.get("broker")) is not None:
        rows += [("(i)   RabbitMQ persistent publish, confirmed", f"{b['publish_confirmed_per_s']:,.0f} msg/s"
                  + baseline_note("broker")),
                 ("(i)   RabbitMQ consume + ack", f"{b['consume_per_s']:,.0f} msg/s" + baseline_note("broker"))]
    if (s := r.get("store")) is not None:
        rows += [("(ii)  SecantusDB insert_one", f"{s['insert_one_per_s']:,.0f} docs/s"),
                 ("(ii)  SecantusDB insert_many", f"{s['insert_many_docs_per_s']:,.0f} docs/s")]
    if (p := r.get("pipeline")) is not None:
        rows.append(("(iii) pipeline, leads fully assigned", f"{p['leads_assigned_per_s']:,.1f} leads/s "
                                                            f"({p['assigned']}/{p['leads']} in {p['seconds']:.1f} s)"))
    if (lat := r.get("latency_at_half_load")) is not None:
        rows.append(("(iv)  capture->assignment at half load",
                     f"p50 {lat['p50_ms']:.0f} / p95 {lat['p95_ms']:.0f} / p99 {lat['p99_ms']:.0f} ms "
                     f"at {lat['offered_leads_per_s']:.0f}/s"))
    if (sub := r.get("grpc_submit_lead")) is not None:
        rows += [("(v)   SubmitLead sequential", f"p50 {sub['p50_ms']:.2f} / p99 {sub['p99_ms']:.2f} ms"),
                 ("(v)   SubmitLead at 16 callers", f"{sub['per_s_at_16']:,.0f} calls/s")]
    if (nk := r.get("grpc_health_check_nameko")) is not None:
        rows.append(("(v)   health check, nameko-grpc", f"p50 {nk['p50_ms']:.2f} / p99 {nk['p99_ms']:.2f} ms, "
                                                       f"{nk['per_s_at_16']:,.0f}/s at 16"))
    if (gr := r.get("grpc_health_check_plain_grpcio")) is not None:
        rows.append(("(v)   health check, plain grpcio", f"p50 {gr['p50_ms']:.2f} / p99 {gr['p99_ms']:.2f} ms, "
                                                        f"{gr['per_s_at_16']:,.0f}/s at 16"
                     + baseline_note("grpc_health_check_plain_grpcio")))
    if (bulk := r.get("capture_bulk")) is not None:
        imp, cards = bulk["import_synthetic"], bulk["business_cards"]
        rows += [
            ("(vii) ImportLeadFile, 100k-row CSV", f"{imp['rows_per_s']:,.0f} rows/s ({imp['accepted']:,} new, "
                                                   f"{imp['rejected']} rejected, {imp['seconds']:.1f} s)"),
            ("(vii) store alone, insert_many of those lead docs",
             f"{bulk['store_same_lead_documents']['docs_per_s']:,.0f} docs/s (same indexes, 500 per call)"),
            ("(vii) the same file again", f"{bulk['reimport_synthetic']['rows_per_s']:,.0f} rows/s "
                                          f"({bulk['reimport_synthetic']['unchanged']:,} unchanged)"),
            *([("(vii) ImportLeadFile, X Education export", f"{bulk['import_xeducation']['rows_per_s']:,.0f} rows/s "
                                                           f"({bulk['import_xeducation']['accepted']:,} new)")]
              if "import_xeducation" in bulk else []),
            ("(vii) ScanBusinessCard", f"p50 {cards['seconds_p50']:.2f} s/card, max {cards['seconds_max']:.2f} s "
                                       f"({cards['email_read_correctly']}/{cards['cards']} emails right)"),
        ]
        if (costs := bulk.get("lead_index_costs")) is not None:
            per_lead = costs["microseconds_per_lead"]
            rows.append(("(vii) a lead's insert, by index (µs/lead)",
                         ", ".join(f"{name} {value:,.0f}" for name, value in per_lead.items())
                         + f"; {costs['search_terms_per_lead']:.0f} search terms per lead"))
    if (sc := r.get("scoring")) is not None:
        get = sc["get_lead_score"]
        rows += [
            ("(viii) lead_captured scored end to end", f"{sc['lead_captured']['per_s']:,.0f} events/s "
                                                      f"({sc['lead_captured']['scored']:,} leads)"),
            ("(viii) lead_activity_recorded scored", f"{sc['lead_activity_recorded']['per_s']:,.0f} events/s"),
            ("(viii) GetLeadScore", f"p50 {get['p50_ms']:.2f} / p99 {get['p99_ms']:.2f} ms, "
                                    f"{get['per_s_at_16']:,.0f}/s at 16"),
            *([("(viii) TrainWinModel, X Education", f"{win['rpc_seconds']:.1f} s over gRPC "
                                                     f"({win['training_seconds']:.1f} s training; "
                                                     f"{win['in_process_seconds']:.1f} s in-process), "
                                                     f"ROC-AUC {win['roc_auc']:.3f} vs naive Bayes "
                                                     f"{win['baseline_roc_auc']:.3f}, {win['leads']:,} leads")]
              if (win := sc.get("win_model_xeducation")) else []),
            *([(f"(viii) TrainWinModel, {large['leads']:,} leads", f"{large['rpc_seconds']:.1f} s over gRPC "
                                                                 f"({large['training_seconds']:.1f} s training)")]
              if (large := sc.get("win_model_large")) else []),
        ]
    if (routing := r.get("routing")) is not None:
        rows += [*[routing_row(run) for run in (routing["one_replica"], routing["three_replicas"])],
                 ("(ix)  routing decision alone, in process",
                  f"{routing['decisions_in_process_per_s']:,.0f} decisions/s")]
    if (opp := r.get("opportunity")) is not None:
        rows += [
            ("(x)   ImportOpportunities, synthetic history", f"{opp['import_synthetic']['rows_per_s']:,.0f} rows/s "
                                                             f"({opp['import_synthetic']['imported']:,} imported, "
                                                             f"{opp['import_synthetic']['seconds']:.1f} s)"),
            ("(x)   the same history again", f"{opp['reimport_synthetic']['rows_per_s']:,.0f} rows/s "
                                             f"({opp['reimport_synthetic']['unchanged']:,} unchanged)"),
            *([("(x)   ImportOpportunities, Maven history", f"{opp['import_maven']['rows_per_s']:,.0f} rows/s "
                                                            f"({opp['import_maven']['imported']:,} imported, 4 files)")]
              if "import_maven" in opp else []),
            ("(x)   MoveOpportunityStage", f"p50 {opp['move_stage']['p50_ms']:.2f} / "
                                           f"p99 {opp['move_stage']['p99_ms']:.2f} ms, "
                                           f"{opp['move_stage']['per_s_at_16']:,.0f}/s at 16"),
        ]
    if (rep := r.get("reporting")) is not None:
        rows += reporting_rows(rep, r["ratios"])
    if (gateway := r.get("gateway")) is not None:
        rows += [(f"(xii) GetLead, {label}", f"p50 {g['p50_ms']:.2f} / p99 {g['p99_ms']:.2f} ms, "
                                             f"{g['per_s_at_16']:,.0f}/s at 16")
                 for label, g in (("gRPC direct", gateway["grpc_get_lead"]),
                                  ("HTTP/JSON via gateway", gateway["http_get_lead"]),
                                  ("gateway /healthz alone", gateway["http_healthz"]))]
    for rows_in_file, run in r.get("import_to_assignment", {}).items():
        rows.append((f"(xvi) {int(rows_in_file):,}-row CSV, import start->last assignment",
                     f"{run['seconds_to_last_assignment']:,.1f} s, {run['leads_per_s_end_to_end']:,.0f} leads/s "
                     f"({run['assigned']:,}/{run['accepted']:,} assigned; "
                     f"import alone {run['import_seconds']:,.1f} s)"))
    if (stream := r.get("event_stream")) is not None:
        rows += [
            ("(xvii) events stored through the broker", f"{stream['stored']['events']:,} in "
                                                        f"{stream['stored']['seconds']:.1f} s"),
            *((f"(xvii) read from the earliest, {run['subscribers']} subscriber(s)",
               f"{run['events_per_s']:,.0f} events/s in all, {run['per_subscriber_events_per_s']:,.0f} each "
               f"({run['events']:,} in {run['seconds']:.1f} s)")
              for run in (stream["one_subscriber"], stream["ten_subscribers"])),
            ("(xvii) publish -> delivered, following live", f"p50 {stream['live']['p50_ms']:.0f} / p99 "
                                                            f"{stream['live']['p99_ms']:.0f} ms at "
                                                            f"{stream['live']['rate_per_s']:.0f} events/s "
                                                            f"({stream['live']['delivered']}/"
                                                            f"{stream['live']['events']})"),
        ]
    if (busy := r.get("busy")) is not None:
        rows += [
            ("(xiii) history import, idle / while rescoring", f"{busy['import_idle_rows_per_s']:,.0f} / "
                                                              f"{busy['import_busy_rows_per_s']:,.0f} rows/s"),
            ("(xiii) rescore with a live win model", f"{busy['rescored_per_s']:,.0f} leads/s "
                                                     f"({busy['leads']:,} in {busy['rescore_seconds']:.0f} s)"),
            ("(xiii) probes meanwhile (health + /readyz)", f"slowest {busy['slowest_probe_ms']:.0f} ms, "
                                                          f"{busy['probe_failures']} failed of "
                                                          f"{busy['probe_rounds'] * 10:,}"),
            ("(xiii) transactions run again for conflicts", f"{busy['retries_per_10k_transactions']:.1f} per 10,000 "
                                                            f"({busy['transaction_retries']:,.0f} of "
                                                            f"{busy['transactions']:,.0f})"),
        ]
    if (masking := r.get("log_masking")) is not None:
        rows.append(("(xiv) masking a 1,000,000-character log value",
                     "without '@' {:.3f} s, only '@' {:.3f} s, text with emails and phones {:.3f} s".format(
                         masking["no_at_seconds"], masking["all_at_seconds"], masking["mixed_seconds"])))
    if (rss := r.get("rss_mib")) is not None:
        rows.append(("(vi)  RSS per service", ", ".join(f"{k.split('#')[0]} {v:.0f}" for k, v in rss.items()) + " MiB"))
    rows += [(f"ratio {name}", f"{value:.3f}") for name, value in r["ratios"].items()]
    width = max(len(label) for label, _ in rows)
    print()
    for label, value in rows:
        print(f"{label:{width}}  {value}")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
