"""Routing assigns qualified leads to reps round-robin with a first-response task, once per lead."""
import uuid
from collections import Counter
from datetime import timedelta

from grpc import StatusCode
from leadflow.routing.v1 import routing_pb2, routing_pb2_grpc

from services.routing.models import AssignmentDocument, PendingLeadDocument, RepDocument, TaskDocument
from services.routing.service import RoutingService
from tests.support import new_event, violations_of, wait_until


def qualified_event(lead_id: str | None = None) -> dict:
    lead_id = lead_id or str(uuid.uuid4())
    lead = {"lead_id": lead_id, "email": "buyer@acme.com", "source": "referral",
            "captured_at": "2026-11-29T10:00:00.000Z"}
    return new_event("lead_qualified", {"lead_id": lead_id}, lead=lead, score={"total": 80})


def put_reps(routing, team: str, *rep_ids: str, paused=()):
    for rep_id in rep_ids:
        status = routing_pb2.REP_STATUS_PAUSED if rep_id in paused else routing_pb2.REP_STATUS_ACTIVE
        routing.PutRep(routing_pb2.PutRepRequest(rep=routing_pb2.Rep(
            rep_id=rep_id, name=rep_id.title(), team=team, status=status)))


def clear_reps():
    # Reps are shared by every test of this session's routing database.
    RepDocument.objects.update(status="paused")


def test_qualified_leads_are_shared_fairly_among_active_reps(run_service, tokens, tap, publish):
    service = run_service(RoutingService, SLA_FIRST_RESPONSE_MINUTES=90)
    routing = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["admin"])
    clear_reps()
    prefix = uuid.uuid4().hex[:6]
    reps = [f"{prefix}.a", f"{prefix}.b", f"{prefix}.c"]
    put_reps(routing, "team-a", *reps, f"{prefix}.paused", paused={f"{prefix}.paused"})
    emitted = tap("routing")

    events = [publish("scoring", qualified_event()) for _ in range(30)]
    emitted.collect(60)

    assigned = emitted.of_type("lead_assigned")
    assert sorted(e["lead_id"] for e in assigned) == sorted(e["lead_id"] for e in events)
    assert Counter(e["rep_id"] for e in assigned) == {rep: 10 for rep in reps}
    assignment = routing.GetAssignment(routing_pb2.GetAssignmentRequest(lead_id=events[0]["lead_id"])).assignment
    assert assignment.strategy == "round_robin" and assignment.policy_version == "default@1"
    assert list(assignment.candidates) == reps
    due = assignment.task.due_at.ToDatetime() - assignment.assigned_at.ToDatetime()
    assert due == timedelta(minutes=90) and assignment.task.kind == "first_response"
    task_events = emitted.of_type("task_created")
    assert {e["lead_id"] for e in task_events} == {e["lead_id"] for e in events}


def test_the_same_lead_is_never_assigned_twice(run_service, tokens, tap, publish):
    service = run_service(RoutingService)
    routing = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["admin"])
    put_reps(routing, "team-a", "rep.one")
    emitted = tap("routing", "lead_assigned")
    event = qualified_event()

    publish("scoring", event)
    publish("scoring", event)  # redelivery
    publish("scoring", qualified_event(event["lead_id"]))  # the lead qualifies again later

    emitted.collect(1)
    assert len(emitted.settle(1.0)) == 1
    assert AssignmentDocument.objects(id=event["lead_id"]).count() == 1
    assert TaskDocument.objects(lead_id=event["lead_id"]).count() == 1


def test_a_lead_waits_visibly_until_a_rep_is_available(run_service, tokens, tap, publish):
    service = run_service(RoutingService)
    routing = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["admin"])
    clear_reps()
    emitted = tap("routing", "lead_assigned")
    event = publish("scoring", qualified_event())

    assert wait_until(lambda: PendingLeadDocument.objects(id=event["lead_id"]).count() == 1)
    assert emitted.settle(0.3) == []
    put_reps(routing, "team-a", f"late.{uuid.uuid4().hex[:6]}")

    [assigned] = emitted.collect(1)
    assert assigned["lead_id"] == event["lead_id"]
    assert PendingLeadDocument.objects(id=event["lead_id"]).count() == 0


def test_reps_see_only_their_own_tasks_and_assignments(run_service, tokens, publish):
    service = run_service(RoutingService)
    admin = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["admin"])
    clear_reps()
    put_reps(admin, "team-a", "rep.one")
    event = publish("scoring", qualified_event())
    wait_until(lambda: AssignmentDocument.objects(id=event["lead_id"]).count())

    rep = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["rep"])
    tasks = rep.ListTasks(routing_pb2.ListTasksRequest()).tasks
    assert tasks and {t.rep_id for t in tasks} == {"rep.one"}
    assert event["lead_id"] in {t.lead_id for t in tasks}
    other = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["other_rep"])
    assert other.error("GetAssignment", routing_pb2.GetAssignmentRequest(lead_id=event["lead_id"])).code == \
        StatusCode.PERMISSION_DENIED
    assert other.error("ListTasks", routing_pb2.ListTasksRequest(rep_id="rep.one")).code == \
        StatusCode.PERMISSION_DENIED


def test_rep_changes_are_validated_and_guarded(run_service, tokens):
    service = run_service(RoutingService)
    admin = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["admin"])
    error = admin.error("PutRep", routing_pb2.PutRepRequest(rep=routing_pb2.Rep(rep_id="bad id!", email="x")))
    assert error.code == StatusCode.INVALID_ARGUMENT
    assert set(violations_of(error.status)) == {"rep.rep_id", "rep.name", "rep.team", "rep.email"}

    manager = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["manager"])
    foreign = routing_pb2.PutRepRequest(rep=routing_pb2.Rep(rep_id="x.y", name="X", team="team-b"))
    assert manager.error("PutRep", foreign).code == StatusCode.PERMISSION_DENIED
    rep = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["rep"])
    assert rep.error("PutRep", foreign).code == StatusCode.PERMISSION_DENIED
    assert RepDocument.objects(id="x.y").count() == 0


def test_rep_listing_pages(run_service, tokens):
    service = run_service(RoutingService)
    admin = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["admin"])
    team = f"page-{uuid.uuid4().hex[:6]}"
    put_reps(admin, team, *(f"{team}.{i:02}" for i in range(5)))

    first = admin.ListReps(routing_pb2.ListRepsRequest(team=team, page={"page_size": 3}))
    second = admin.ListReps(routing_pb2.ListRepsRequest(team=team, page={"page_size": 3,
                                                                         "page_token": first.page.next_page_token}))
    assert [r.rep_id for r in first.reps] + [r.rep_id for r in second.reps] == [f"{team}.{i:02}" for i in range(5)]
    assert second.page.next_page_token == ""
