"""(xi) Reporting on a reporting-only platform: a history of 1,000,000 events (100,000 leads, one captured
a minute from 2026-01-01, each converted into an opportunity; nine in ten won or lost 20 days after
capture, one in ten still open) loaded into its event log and read models, then every call the manager's
dashboard makes and nine rarer ones timed on it (p50/p99, against plain grpcio's health check), then
live events projected per second through the broker (against the raw broker's consume rate).

BENCH_REPORTING_LOAD chooses how the history is loaded:

- ``rebuild`` (the default): the whole history written straight into the event log, then
  RebuildProjections timed until its job is done (events/s over the whole log); the read models and
  anything else the rebuild makes are the service's own.
- ``straight``: the event log and the read models (lead progress, opportunity facts) written straight
  into the store as the projections would make them, after a RebuildProjections of a 20,000-event log
  timed on its own: for code whose rebuild is too slow to replay the whole history.
"""
import json
import os
import shutil
import statistics
import subprocess
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pymongo
from google.protobuf import json_format
from leadflow.reporting.v1 import reporting_pb2

from bench.common import _wait, logs_dir, rss_mib, sequential_profile
from services.cli.client import LeadflowClient
from services.common.events import iso, make_event, parse_iso
from services.devstack.supervisor import Platform, answers_ok

LOAD_MODES = ("rebuild", "straight")
CONSOLE = Path(__file__).resolve().parent.parent / "console"
HISTORY_START = datetime(2026, 1, 1, tzinfo=timezone.utc)  # the first lead's capture; one more each minute
CLOSED_AFTER = timedelta(days=20)  # capture -> won or lost
OPEN_CLOSE_DATE_AFTER = timedelta(days=30)  # capture -> expected close date of an open opportunity
REPS, TEAMS = 40, 6
SOURCES = ("google", "referral", "trade_show", "webinar", "linkedin")
PRODUCTS = ("GTX Basic", "GTX Pro", "MG Special")
LOST_REASONS = ("price", "timing", "competitor", "no_budget")
FORECAST_CATEGORIES = ("commit", "best_case", "pipeline")
DASHBOARD_TEAM = "team-1"
LOAD_BATCH_LEADS = 2000
CALLS = 10  # timed calls of each report, after one warm-up
CALL_BUDGET_SECONDS = 120.0  # a report slower than this / CALLS is timed fewer times (three at least)
REPORT_TIMEOUT = 600.0


def load_mode() -> str:
    mode = os.environ.get("BENCH_REPORTING_LOAD", "rebuild").strip().lower() or "rebuild"
    if mode not in LOAD_MODES:
        raise SystemExit(f"BENCH_REPORTING_LOAD must be one of {', '.join(LOAD_MODES)}, not {mode!r}")
    return mode


# The history -------------------------------------------------------------------------------------
def rep_id(number: int) -> str:
    return f"bench.rep{number}"


def team_of(rep_number: int) -> str:
    """A rep belongs to one team."""
    return f"team-{rep_number % TEAMS}"


def reps_of(team: str) -> list[str]:
    return [rep_id(k) for k in range(REPS) if team_of(k) == team]


def stays_open(index: int) -> bool:
    """Every tenth lead of each rep (lead i is rep i % 40's) has an opportunity still open."""
    return (index + index // REPS) % 10 == 0


def history_today(leads: int) -> date:
    """The last day of a history of ``leads`` leads: the day the last lead's deal closes."""
    return (HISTORY_START + timedelta(minutes=leads - 1) + CLOSED_AFTER).date()


def quarter_of(day: date) -> tuple[date, date]:
    """The calendar quarter holding ``day``, first and last day."""
    first = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    after = date(first.year + (first.month == 10), (first.month + 2) % 12 + 1, 1)
    return first, after - timedelta(days=1)


def reporting_history(leads: int, start_index: int = 0) -> list[tuple[str, dict]]:
    """Ten events per lead, as the services emit them: captured, scored, qualified, assigned, task,
    contacted, task done, an activity, converted into an opportunity, then won or lost 20 days later —
    or, for one lead in ten, moved on to the proposal stage and still open, expected to close 30 days
    after capture."""
    events = []
    for i in range(start_index, start_index + leads):
        lead_id, opportunity_id = f"bl-{i:08d}", f"bo-{i:08d}"
        rep_number = i % REPS
        rep, team = rep_id(rep_number), team_of(rep_number)
        at = HISTORY_START + timedelta(minutes=i)
        converted_at = at + timedelta(hours=2)
        lead = {"lead_id": lead_id, "source": SOURCES[i % 5], "medium": "cpc", "campaign": f"c{i % 12}"}
        snapshot = {"owner_id": rep, "team": team, "account_id": f"acc-{i % 2000}",
                    "account_name": f"Account {i % 2000}", "product": PRODUCTS[(i // 3) % 3],
                    "pipeline_id": "new-business", "currency": "USD", "amount": str(500 + i % 9000),
                    "engaged_at": iso(converted_at), "close_date": (at + OPEN_CLOSE_DATE_AFTER).date().isoformat()}
        subjects = {"lead_id": lead_id, "opportunity_id": opportunity_id}

        def event(event_type, subject_ids, minutes, at=at, **payload):
            return make_event(event_type, subject_ids, payload, occurred_at=at + timedelta(minutes=minutes))
        if stays_open(i):
            changed_at = at + timedelta(days=3)
            outcome = ("opportunity", event(
                "opportunity_stage_changed", subjects, 60 * 24 * 3, **snapshot, status="open", stage_id="proposal",
                version=2, probability=40, forecast_category=FORECAST_CATEGORIES[(i // REPS) % 3],
                from_stage="qualification", to_stage="proposal", changed_at=iso(changed_at), changed_by=rep))
        else:
            won = (i // 5) % 3 != 0
            outcome = ("opportunity", event(
                f"opportunity_{'won' if won else 'lost'}", subjects, CLOSED_AFTER.total_seconds() // 60,
                **snapshot, status="won" if won else "lost", stage_id="closed_won" if won else "closed_lost",
                version=5, probability=100 if won else 0, forecast_category="closed",
                lost_reason="" if won else LOST_REASONS[i % 4], closed_at=iso(at + CLOSED_AFTER)))
        events += [
            ("capture", event("lead_captured", {"lead_id": lead_id}, 0, lead=lead)),
            ("scoring", event("lead_scored", {"lead_id": lead_id}, 0, score={"total": 70}, win_probability=0.5)),
            ("scoring", event("lead_qualified", {"lead_id": lead_id}, 0, lead=lead)),
            ("routing", event("lead_assigned", {"lead_id": lead_id, "rep_id": rep}, 0, team=team,
                              assigned_at=iso(at), owner_version=1)),
            ("routing", event("task_created", {"task_id": f"t-{i}", "lead_id": lead_id, "rep_id": rep}, 0,
                              due_at=iso(at + timedelta(hours=2)))),
            ("opportunity", event("lead_contacted", {"lead_id": lead_id, "rep_id": rep}, 30, team=team,
                                  activity_type="call", contacted_at=iso(at + timedelta(minutes=30)))),
            ("routing", event("task_completed", {"task_id": f"t-{i}", "lead_id": lead_id, "rep_id": rep}, 30,
                              completed_at=iso(at + timedelta(minutes=30)))),
            ("opportunity", event("activity_logged", {"lead_id": lead_id, "activity_id": f"a-{i}"}, 31,
                                  activity_type="call", logged_by=rep, rep_id=rep, team=team)),
            ("opportunity", event("lead_converted", subjects, 120, **snapshot, status="open",
                                  stage_id="qualification", version=1, probability=10, forecast_category="pipeline",
                                  rep_id=rep, handed_off=False, converted_at=iso(converted_at))),
            outcome,
        ]
    return events


def projected_documents(events: list) -> tuple[list, list]:
    """The lead-progress and opportunity-fact documents the projections make of ``events`` (those of
    reporting_history, every event of a lead among them), written straight into the store to load a
    large history quickly: the same fields as ReportingRepository.project leaves once every event is
    projected, in whatever order."""
    from bson.decimal128 import Decimal128

    from services.reporting.domain import (OPPORTUNITY_SNAPSHOT_EVENTS, PROJECTED_MOMENTS, attribution_of,
                                           opportunity_fact, source_of, stage_moves)
    progress, facts, moves = {}, {}, {}
    for service, event in events:
        event_type, lead_id = event["event_type"], event.get("lead_id")
        moments = PROJECTED_MOMENTS.get((service, event_type))
        if moments and lead_id:
            doc = progress.setdefault(lead_id, {"_id": lead_id})
            for field, key in moments.items():
                moment = parse_iso(event[key])
                if doc.get(field) is None or moment > doc[field]:
                    doc[field] = moment
            if source_of(event):
                doc["source"] = source_of(event)
            if event.get("rep_id"):
                doc["rep_id"] = event["rep_id"]
            if event.get("team") and event_type in ("lead_assigned", "lead_reassigned"):
                doc["team"] = event["team"]
            if isinstance(event.get("lead"), dict):
                doc.update({k: v for k, v in attribution_of(event).items() if v and k != "source"})
        if event_type == "lead_scored" and event.get("win_probability") is not None and lead_id in progress:
            at, doc = parse_iso(event["occurred_at"]), progress[lead_id]
            if doc.get("win_scored_at") is None or at > doc["win_scored_at"]:
                doc.update(win_probability=float(event["win_probability"]), win_scored_at=at)
        if event_type in OPPORTUNITY_SNAPSHOT_EVENTS:
            opportunity_id = event["opportunity_id"]
            known = moves.setdefault(opportunity_id, [])
            known += [move for move in stage_moves(event) if move not in known]
            fact = opportunity_fact(event)
            if opportunity_id not in facts or facts[opportunity_id]["version"] < fact["version"]:
                if fact["amount"] is not None:
                    fact["amount"] = Decimal128(fact["amount"])
                facts[opportunity_id] = {"_id": opportunity_id, **fact}
    for opportunity_id, fact in facts.items():
        lead = progress.get(fact["lead_id"]) if fact["lead_id"] else None
        if lead and lead.get("source"):  # the lead's attribution, whichever event came first
            fact.update({name: lead.get(name) or "" for name in ("source", "medium", "campaign")})
        if moves[opportunity_id]:
            fact["moves"] = moves[opportunity_id]
    return list(progress.values()), list(facts.values())


# The reports timed -----------------------------------------------------------------------------------
def report_calls(today: date) -> list[tuple[str, str, str, str, object]]:
    """(key, group, rpc, what it asks, request): what the console's dashboard
    (console/src/pages/dashboard.js) asks for a manager of team-1 — the last 30 days up to ``today``
    and the calendar quarter holding it — then rarer combinations of periods, filters and groupings."""
    r = reporting_pb2
    last30 = {"period_start": (today - timedelta(days=29)).isoformat(), "period_end": today.isoformat()}
    first, last = quarter_of(today)
    quarter = {"period_start": first.isoformat(), "period_end": last.isoformat()}
    team = {"team": DASHBOARD_TEAM}
    by_owner = r.GROUP_BY_OWNER
    return [
        ("funnel", "dashboard", "GetFunnel", "last 30 days, team-1",
         r.GetFunnelRequest(filter=r.ReportFilter(**last30, **team))),
        ("source_performance", "dashboard", "GetSourcePerformance", "last 30 days, team-1",
         r.GetSourcePerformanceRequest(filter=r.ReportFilter(**last30, **team))),
        ("speed_to_lead_by_owner", "dashboard", "GetSpeedToLead", "last 30 days, team-1, by owner",
         r.GetSpeedToLeadRequest(filter=r.ReportFilter(**last30, **team), group_by=by_owner)),
        ("sla_compliance_by_owner", "dashboard", "GetSlaCompliance", "last 30 days, team-1, by owner",
         r.GetSlaComplianceRequest(filter=r.ReportFilter(**last30, **team), group_by=by_owner)),
        ("win_rate_by_owner", "dashboard", "GetWinRate", "last 30 days, team-1, by owner",
         r.GetWinRateRequest(filter=r.ReportFilter(**last30, **team), group_by=by_owner)),
        ("rep_performance", "dashboard", "GetRepPerformance", "last 30 days, team-1",
         r.GetRepPerformanceRequest(filter=r.ReportFilter(**last30, **team))),
        ("forecast", "dashboard", "GetForecast", "quarter, team-1",
         r.GetForecastRequest(filter=r.ReportFilter(**quarter, **team))),
        ("quota_attainment", "dashboard", "GetQuotaAttainment", "quarter, team-1",
         r.GetQuotaAttainmentRequest(filter=r.ReportFilter(**quarter, **team))),
        ("win_rate_by_product_all_time", "rarer", "GetWinRate", "whole history, by product",
         r.GetWinRateRequest(group_by=r.GROUP_BY_PRODUCT)),
        ("win_rate_by_source_quarter_campaign_c3", "rarer", "GetWinRate", "quarter, campaign c3, by source",
         r.GetWinRateRequest(filter=r.ReportFilter(**quarter, campaign="c3"), group_by=r.GROUP_BY_SOURCE)),
        ("sales_cycle_by_owner_quarter", "rarer", "GetSalesCycle", "quarter, by owner",
         r.GetSalesCycleRequest(filter=r.ReportFilter(**quarter), group_by=by_owner)),
        ("source_performance_by_campaign_all_time", "rarer", "GetSourcePerformance", "whole history, by campaign",
         r.GetSourcePerformanceRequest(by_campaign=True)),
        ("loss_reasons_quarter_gtx_pro", "rarer", "GetLossReasons", "quarter, product GTX Pro",
         r.GetLossReasonsRequest(filter=r.ReportFilter(**quarter, product="GTX Pro"))),
        ("pipeline_summary_all_time", "rarer", "GetPipelineSummary", "whole history",
         r.GetPipelineSummaryRequest()),
        ("account_value_quarter", "rarer", "GetAccountValue", "quarter",
         r.GetAccountValueRequest(filter=r.ReportFilter(**quarter))),
        ("win_rate_by_account_quarter", "rarer", "GetWinRate", "quarter, by account",
         r.GetWinRateRequest(filter=r.ReportFilter(**quarter), group_by=r.GROUP_BY_ACCOUNT)),
        ("funnel_quarter_webinar_team1", "rarer", "GetFunnel", "quarter, source webinar, team-1",
         r.GetFunnelRequest(filter=r.ReportFilter(**quarter, source="webinar", **team))),
    ]


def put_quotas(admin, today: date) -> dict:
    """The quarter's quota of the dashboard's team and of each of its reps, in USD."""
    first, last = quarter_of(today)
    period = {"period_start": first.isoformat(), "period_end": last.isoformat(), "currency": "USD"}
    admin.reporting.PutQuota(reporting_pb2.PutQuotaRequest(quota=reporting_pb2.Quota(
        team=DASHBOARD_TEAM, amount="45000000", **period)))
    reps = reps_of(DASHBOARD_TEAM)
    for rep in reps:
        admin.reporting.PutQuota(reporting_pb2.PutQuotaRequest(quota=reporting_pb2.Quota(
            owner_id=rep, team=DASHBOARD_TEAM, amount="7000000", **period)))
    return {"team": DASHBOARD_TEAM, "reps": reps, **period}


def drop_backlog(amqp_uri: str) -> None:
    """Delete reporting's queues before it starts: in a full run they hold the events of the sections
    before, which would otherwise flow into the history measured here while it is measured."""
    from kombu import Connection

    from services.common.messaging import consumer_queues
    from services.reporting.service import ReportingService
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        for name in consumer_queues(ReportingService):
            channel.queue_delete(name)


# Reporting that keeps roll-ups says, with its rebuild's progress, how many records still wait for
# them; a rebuild is done when both its replay and the roll-ups are.
HAS_ROLLUPS = "rollups_ready" in reporting_pb2.GetRebuildJobResponse.DESCRIPTOR.fields_by_name


def timed_rebuild(admin, rollups_only: bool = False) -> dict:
    """RebuildProjections of the whole log (or of the roll-ups alone, from the records), timed until
    its job reports done and, where reporting keeps roll-ups, until every record is applied."""
    started = time.perf_counter()
    request = reporting_pb2.RebuildProjectionsRequest(**({"rollups_only": True} if rollups_only else {}))
    job = admin.reporting.RebuildProjections(request, timeout=600).job
    reported, replayed_at = started, None
    while True:
        answer = admin.reporting.GetRebuildJob(reporting_pb2.GetRebuildJobRequest(job_id=job.job_id), timeout=60)
        current = answer.job
        if current.status == "done" and replayed_at is None:
            replayed_at = time.perf_counter()
        if current.status == "done" and (not HAS_ROLLUPS or (answer.rollups_ready
                                                               and not answer.rollup_records_pending)):
            break
        if time.perf_counter() - reported > 60:
            reported = time.perf_counter()
            waiting = f", {answer.rollup_records_pending:,} records waiting for the roll-ups" if HAS_ROLLUPS else ""
            print(f"     rebuild: {current.processed:,} of {current.total:,} after {reported - started:.0f} s"
                  f"{waiting}", flush=True)
        time.sleep(0.5)
    seconds = time.perf_counter() - started
    total = current.total if rollups_only else job.total
    return {"events" if not rollups_only else "records": total, "seconds": seconds,
            ("events_per_s" if not rollups_only else "records_per_s"): total / seconds,
            "replay_seconds": replayed_at - started, "rollups_only": rollups_only}


def dashboard_in_chromium(console_url: str, manager_token: str) -> dict:
    """The manager's dashboard in headless Chromium (console/bench/dashboard-load.mjs): navigation to
    every chart drawn, five page loads after one warm-up; or why it was not timed."""
    if not (CONSOLE / "dist" / "index.html").is_file() or not (CONSOLE / "node_modules" / "playwright-core").is_dir():
        return {"skipped": "the console is not built: run `make console`"}
    if not shutil.which("node"):
        return {"skipped": "Node.js is not installed"}
    run = subprocess.run(["node", "bench/dashboard-load.mjs"], cwd=CONSOLE, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "LEADFLOW_CONSOLE_URL": console_url,
                                           "LEADFLOW_MANAGER_TOKEN": manager_token})
    if run.returncode != 0:
        return {"skipped": f"the browser run failed: {(run.stderr or run.stdout).strip()[-500:]}"}
    timed = json.loads(run.stdout.strip().splitlines()[-1])
    runs = sorted(timed["runs_ms"])
    return {"runs_ms": runs, "median_ms": statistics.median(runs), "max_ms": runs[-1], "charts": timed["charts"]}


def bench_reporting(infra, table: str, admin_token: str, events_loaded: int, rebuild_events: int,
                    live_events: int, manager_token: str = "") -> dict:
    """Reporting alone. (1) A history of ``events_loaded`` events (a tenth as many leads) loaded as
    BENCH_REPORTING_LOAD says (``straight`` also times the rebuild of its first ``rebuild_events``).
    (2) The quarter's quotas of team-1 and its reps, then the dashboard's calls and rarer ones timed on
    that history. (3) Live events through the broker projected per second."""
    from services.common.settings import database_name
    from tests.support import EventPublisher
    mode = load_mode()
    drop_backlog(infra.amqp_uri)
    stack = Platform({**infra.env(), "LEADFLOW_AUTH_TOKENS": table, "LOG_LEVEL": "WARNING",
                      "REPORTING_TIMER_SECONDS": "0.5"}, logs_dir("reporting"), services=("reporting",),
                     any_free_port=True, gateway=bool(manager_token)).start()
    db = pymongo.MongoClient(infra.mongo_uri)[database_name(infra.db_prefix, "reporting")]
    leads = max(1, events_loaded // 10)
    today = history_today(leads)
    results = {"load_mode": mode, "history": {
        "leads": leads, "first_capture": HISTORY_START.date().isoformat(), "today": today.isoformat(),
        "quarter": [d.isoformat() for d in quarter_of(today)], "open_opportunities": sum(map(stays_open, range(leads))),
        "reps": REPS, "teams": TEAMS}}

    def log_events(batch):
        db["event_log"].insert_many([
            {"_id": e["event_id"], "event_type": e["event_type"], "source_service": service,
             "occurred_at": parse_iso(e["occurred_at"]), "lead_id": e.get("lead_id", ""),
             "opportunity_id": e.get("opportunity_id", ""), "account_id": e.get("account_id", ""),
             "payload": e} for service, e in batch], ordered=False)

    def loaded(**timings) -> dict:
        return {"mode": mode, **timings, "events": db["event_log"].estimated_document_count(),
                "leads": db["lead_progress"].estimated_document_count(),
                "opportunities": db["opportunity_facts"].estimated_document_count()}
    try:
        # The gateway is ready only when all five services answer; the dashboard needs reporting alone.
        stack.wait_ready(processes=stack.of("reporting"))
        admin = LeadflowClient(admin_token, stack.addresses())
        if mode == "rebuild":
            started = time.perf_counter()
            for first in range(0, leads, LOAD_BATCH_LEADS):
                log_events(reporting_history(min(LOAD_BATCH_LEADS, leads - first), first))
            logged = time.perf_counter() - started
            print(f"     {leads * 10:,} events logged in {logged:.0f} s; rebuilding ...", flush=True)
            results["rebuild"] = timed_rebuild(admin)
            results["load"] = loaded(seconds=logged + results["rebuild"]["seconds"], log_seconds=logged,
                                     rebuild_seconds=results["rebuild"]["seconds"])
        else:
            rebuilt = min(leads, max(1, rebuild_events // 10))
            log_events(reporting_history(rebuilt))
            results["rebuild"] = timed_rebuild(admin)
            started = time.perf_counter()
            for first in range(rebuilt, leads, LOAD_BATCH_LEADS):
                batch = reporting_history(min(LOAD_BATCH_LEADS, leads - first), first)
                log_events(batch)
                progress, facts = projected_documents(batch)
                db["lead_progress"].insert_many(progress, ordered=False)
                db["opportunity_facts"].insert_many(facts, ordered=False)
            results["load"] = loaded(seconds=time.perf_counter() - started, rebuilt_leads=rebuilt)
            if HAS_ROLLUPS:  # records written behind reporting's back: its roll-ups are built from them
                print("     building the roll-ups from the records ...", flush=True)
                results["rollups_from_records"] = timed_rebuild(admin, rollups_only=True)

        results["quotas"] = put_quotas(admin, today)
        results["calls"] = {}
        for key, group, rpc, label, request in report_calls(today):
            print(f"     {rpc}, {label} ...", flush=True)
            method = getattr(admin.reporting, rpc)
            results["calls"][key] = {
                "group": group, "rpc": rpc, "label": label, "request": json_format.MessageToDict(request),
                **sequential_profile(lambda r, method=method: method(r, timeout=REPORT_TIMEOUT), request, CALLS,
                                     CALL_BUDGET_SECONDS)}
        if manager_token:
            print("     the manager's dashboard in headless Chromium ...", flush=True)
            _wait(lambda: answers_ok(f"{stack.gateway.url}/healthz"), limit=60)
            results["dashboard_browser"] = dashboard_in_chromium(stack.gateway.url, manager_token)

        publish = EventPublisher(infra.amqp_uri)
        fresh = reporting_history(max(1, live_events // 10), 10_000_000)
        started = time.perf_counter()
        for service, event in fresh:
            publish(service, event)
        # Each event looked up once by id (a count would make the embedded store read the whole log,
        # again and again, and slow down the very projection being measured).
        waiting = iter(event["event_id"] for _, event in fresh)
        pending = next(waiting, None)

        def all_logged() -> bool:
            nonlocal pending
            while pending is not None and db["event_log"].find_one({"_id": pending}, {"_id": 1}):
                pending = next(waiting, None)
            return pending is None
        _wait(all_logged)
        seconds = time.perf_counter() - started
        publish.close()
        results["projection"] = {"events": len(fresh), "seconds": seconds, "events_per_s": len(fresh) / seconds}
        results["reporting_rss_mib"] = round(rss_mib(stack.processes[0].process.pid), 1)
        admin.close()
    finally:
        stack.stop()
    return results
