"""Reporting projects every pipeline event into the funnel, in whatever order events arrive."""
import uuid

import pytest
from leadflow.reporting.v1 import reporting_pb2, reporting_pb2_grpc

from services.reporting.models import LeadProgressDocument
from services.reporting.service import ReportingService
from services.common.events import iso, utcnow
from tests.support import new_event, wait_until

STAGES = ["captured", "scored", "qualified", "assigned", "contacted"]


def journey(lead_id: str, source: str, stages: int) -> list:
    at = "2026-11-29T10:00:00.000Z"
    events = [
        ("capture", new_event("lead_captured", {"lead_id": lead_id}, lead={"lead_id": lead_id, "source": source})),
        ("scoring", new_event("lead_scored", {"lead_id": lead_id}, score={"total": 70}, source=source)),
        ("scoring", new_event("lead_qualified", {"lead_id": lead_id}, lead={"lead_id": lead_id, "source": source})),
        ("routing", new_event("lead_assigned", {"lead_id": lead_id, "rep_id": "rep.one"}, assigned_at=at,
                              source=source, team="team-a")),
        ("opportunity", new_event("lead_contacted", {"lead_id": lead_id, "rep_id": "rep.one"}, contacted_at=at)),
    ]
    return events[:stages]


@pytest.mark.parametrize("reverse", [False, True], ids=["in order", "out of order"])
def test_funnel_counts_each_stage_once(run_service, tokens, publish, reverse):
    service = run_service(ReportingService)
    source = f"src-{uuid.uuid4().hex[:6]}"
    reached = [5, 5, 4, 3, 1]  # stages reached by each of five leads
    events = [e for stages in reached for e in journey(str(uuid.uuid4()), source, stages)]
    for source_service, event in (reversed(events) if reverse else events):
        publish(source_service, event)
    publish(*events[0])  # a redelivery counts nothing twice

    reporting = service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["admin"])

    def funnel():
        return [(reporting_pb2.FunnelStage.Name(s.stage), s.leads, round(s.conversion_from_previous, 2))
                for s in reporting.GetFunnel(reporting_pb2.GetFunnelRequest(source=source)).steps]
    expected = [("FUNNEL_STAGE_CAPTURED", 5, 1.0), ("FUNNEL_STAGE_SCORED", 4, 0.8),
                ("FUNNEL_STAGE_QUALIFIED", 4, 1.0), ("FUNNEL_STAGE_ASSIGNED", 3, 0.75),
                ("FUNNEL_STAGE_CONTACTED", 2, 0.67), ("FUNNEL_STAGE_SALES_QUALIFIED", 0, 0.0),
                ("FUNNEL_STAGE_CONVERTED", 0, 0.0), ("FUNNEL_STAGE_WON", 0, 0.0)]
    assert wait_until(lambda: funnel() == expected), funnel()
    assert LeadProgressDocument.objects(source=source).count() == 5


def test_reps_read_their_own_funnel_and_a_bad_period_is_named(run_service, tokens, publish):
    from grpc import StatusCode

    from tests.support import violations_of
    service = run_service(ReportingService)
    source = f"src-{uuid.uuid4().hex[:6]}"
    for stages in (5, 5, 4):
        for source_service, event in journey(str(uuid.uuid4()), source, stages):
            publish(source_service, event)
    manager = service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["manager"])
    # A manager's funnel is their team's leads: those assigned to it.
    assert wait_until(lambda: [s.leads for s in manager.GetFunnel(reporting_pb2.GetFunnelRequest(
        source=source)).steps][:5] == [3, 3, 3, 3, 2])

    rep = service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["rep"])
    other = service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["other_rep"])
    assert [s.leads for s in rep.GetFunnel(reporting_pb2.GetFunnelRequest(source=source)).steps][:5] == [3, 3, 3, 3, 2]
    assert [s.leads for s in other.GetFunnel(reporting_pb2.GetFunnelRequest(source=source)).steps][:5] == [0] * 5
    assert rep.error("GetFunnel", reporting_pb2.GetFunnelRequest(filter=reporting_pb2.ReportFilter(
        owner_id="rep.two"))).code == StatusCode.PERMISSION_DENIED
    bad = manager.error("GetFunnel", reporting_pb2.GetFunnelRequest(filter=reporting_pb2.ReportFilter(
        period_start="2026-02-30")))
    assert list(violations_of(bad.status)) == ["filter.period_start"]


def test_the_first_response_deadline_of_a_task_is_projected(run_service, publish):
    run_service(ReportingService)
    lead_id = str(uuid.uuid4())
    publish("routing", new_event("task_created", {"task_id": "t-9", "lead_id": lead_id, "rep_id": "rep.one"},
                                 kind="first_response", due_at="2026-11-29T12:00:00.000Z",
                                 created_at="2026-11-29T10:00:00.000Z"))

    progress = wait_until(lambda: LeadProgressDocument.objects(id=lead_id).first())
    assert progress.first_response_due_at.isoformat().startswith("2026-11-29T12:00:00")
    assert progress.rep_id == "rep.one" and progress.assigned_at is None


def test_an_upgrade_drops_the_indexes_nothing_reads_and_keeps_the_records(run_service, infra, tokens):
    """Indexes an earlier version kept cost every projection write: on the leads' progress, and on the
    event log over every event where its queries ask only for account events and logged activities.
    Starting this version drops or narrows them, nothing stored is lost, and the timeline still finds
    an account's events."""
    import pymongo
    from services.common.settings import database_name
    from tests.integration.conftest import start_isolated
    prefix = f"{infra.db_prefix}up{uuid.uuid4().hex[:6]}"
    database = pymongo.MongoClient(infra.mongo_uri)[database_name(prefix, "reporting")]
    progress, log = database["lead_progress"], database["event_log"]
    for keys in (["source"], ["captured_at"], ["team", "captured_at"], ["rep_id", "captured_at"]):
        progress.create_index([(key, 1) for key in keys], background=False)  # as mongoengine creates them
    for keys in (["lead_id", "occurred_at"], ["account_id", "occurred_at"], ["event_type", "occurred_at"]):
        log.create_index([(key, 1) for key in keys], background=False)
    progress.insert_one({"_id": "lead-kept", "source": "web", "team": "north"})
    lead_id = str(uuid.uuid4())
    progress.insert_one({"_id": lead_id, "source": "web"})
    won = new_event("opportunity_won", {"opportunity_id": str(uuid.uuid4()), "lead_id": lead_id,
                                        "account_id": "acct-kept"})
    log.insert_one({"_id": won["event_id"], "event_type": "opportunity_won", "source_service": "opportunity",
                    "occurred_at": utcnow(), "lead_id": "", "opportunity_id": won["opportunity_id"],
                    "account_id": "acct-kept", "payload": won})
    captured = new_event("lead_captured", {"lead_id": lead_id, "account_id": "acct-kept"},
                         lead={"lead_id": lead_id, "source": "web", "captured_at": iso(utcnow())})
    log.insert_one({"_id": captured["event_id"], "event_type": "lead_captured", "source_service": "capture",
                    "occurred_at": utcnow(), "lead_id": lead_id, "opportunity_id": "", "account_id": "acct-kept",
                    "payload": captured})

    service = start_isolated(run_service, infra, ReportingService, MONGODB_DB_PREFIX=prefix)

    assert sorted(progress.index_information()) == ["_id_", "captured_at_1"]
    assert progress.find_one({"_id": "lead-kept"}) == {"_id": "lead-kept", "source": "web", "team": "north"}
    indexes = log.index_information()
    assert sorted(indexes) == ["_id_", "account_events", "activities_logged", "lead_id_1_occurred_at_1"]
    assert indexes["activities_logged"]["partialFilterExpression"] == {"event_type": "activity_logged"}
    assert log.count_documents({}) == 2 and progress.count_documents({}) == 2
    reporting = service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["admin"])
    timeline = reporting.GetLeadTimeline(reporting_pb2.GetLeadTimelineRequest(lead_id=lead_id))
    assert sorted(entry.event_type for entry in timeline.entries) == ["lead_captured", "opportunity_won"]
    database.client.close()
