"""Routing through its real entrypoints: qualified leads are routed by the stored policy with the
decision explained, nothing is assigned twice, unroutable leads wait visibly, the SLA clock warns,
breaches and escalates (on a clock the test moves), first contact stops it, and managers reassign."""
import hashlib
import hmac
import json
import threading
import uuid
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pymongo
from google.protobuf import struct_pb2
from grpc import StatusCode
from leadflow.routing.v1 import routing_pb2, routing_pb2_grpc

from services.common.events import iso, utcnow
from services.common.settings import database_name
from services.routing.dependencies import Clock, Routing
from services.routing.models import AssignmentDocument, RoutingPolicyDocument, TaskDocument
from services.routing.service import RoutingService
from tests.integration.conftest import start_isolated
from tests.support import new_event, violations_of, wait_until

FAST_CLOCK = {"ROUTING_TIMER_SECONDS": 0.1}


def struct(value: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def qualified_event(lead_id: str | None = None, **fields) -> dict:
    lead_id = lead_id or str(uuid.uuid4())
    lead = {"lead_id": lead_id, "email": f"buyer@{lead_id[:8]}.example.com", "source": "referral",
            "captured_at": iso(utcnow()), "country": "DE", "industry": "software", "company_size": 250,
            "company": f"Company {lead_id[:8]}", "company_domain": f"{lead_id[:8]}.example.com", "tags": [],
            "custom_fields": {}, **fields}
    return new_event("lead_qualified", {"lead_id": lead_id}, lead=lead,
                     score={"total": 80, "fit": 50, "engagement": 30, "grade": "A2"})


def start(run_service, infra, tokens, **overrides):
    service = start_isolated(run_service, infra, RoutingService, **overrides)
    admin = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["admin"])
    return service, admin


def put_rep(routing, rep_id: str, team: str = "team-a", **fields):
    return routing.PutRep(routing_pb2.PutRepRequest(rep=routing_pb2.Rep(
        rep_id=rep_id, name=rep_id.title(), team=team, email=f"{rep_id}@leadflow.example", **fields))).rep


def clock_of(service) -> Clock:
    return next(d for d in service.container.dependencies if isinstance(d, Clock))


def assignment(routing, lead_id: str):
    return routing.GetAssignment(routing_pb2.GetAssignmentRequest(lead_id=lead_id)).assignment


# --- policy and decision ---------------------------------------------------------------------------------

def test_leads_follow_the_stored_policy_and_the_decision_says_why(run_service, infra, tokens, tap, publish):
    service, admin = start(run_service, infra, tokens)
    admin.PutTeam(routing_pb2.PutTeamRequest(team=routing_pb2.Team(team_id="dach", name="DACH", managers=["max"])))
    put_rep(admin, "max", "dach", territories=["DE", "AT"], role="manager")
    put_rep(admin, "erika", "dach", territories=["DE"], weight=2)
    put_rep(admin, "jonas", "dach", territories=["DE"])
    admin.SetRepAvailability(routing_pb2.SetRepAvailabilityRequest(
        rep_id="jonas", status=routing_pb2.REP_STATUS_ACTIVE, away_note="at a trade fair",
        away_from={"seconds": int(utcnow().timestamp()) - 60},
        away_until={"seconds": int(utcnow().timestamp()) + 86400}))
    put_rep(admin, "sam", "row")
    config_events = tap("routing", "config_changed")
    stored = admin.PutRoutingPolicy(routing_pb2.PutRoutingPolicyRequest(definition=struct({
        "rules": [{"id": "dach", "when": {"field": "country", "in": ["DE", "AT", "CH"]}, "team": "dach",
                   "match_rep": ["territory"], "sla_minutes": 30},
                  {"id": "rest", "team": "row"}],
        "sla": {"first_response_minutes": 240}}))).policy
    assert (stored.version, stored.live) == ("routing-policy@1", True)
    emitted = tap("routing", "lead_assigned", "task_created")

    german = [publish("scoring", qualified_event()) for _ in range(6)]
    swiss = publish("scoring", qualified_event(country="CH"))
    french = publish("scoring", qualified_event(country="FR"))
    emitted.collect(16)

    owners = {e["lead_id"]: e["rep_id"] for e in emitted.of_type("lead_assigned")}
    assert Counter(owners[e["lead_id"]] for e in german) == {"erika": 4, "max": 2}  # weights 2:1, jonas away
    assert owners[french["lead_id"]] == "sam"
    # Nobody in DACH covers Switzerland: the rule overflows to the next matching one.
    assert owners[swiss["lead_id"]] == "sam"
    why = assignment(admin, german[0]["lead_id"])
    assert (why.rule_id, why.policy_version, why.strategy, why.team) == \
        ("dach", "routing-policy@1", "weighted_round_robin", "dach")
    assert {(c.rep_id, c.skipped_reason) for c in why.considered} >= {
        ("erika", ""), ("max", "")} and any(
        c.rep_id == "jonas" and c.skipped_reason.startswith("out of office until") and "trade fair" in
        c.skipped_reason for c in why.considered)
    assert why.task.due_at.ToDatetime() - why.assigned_at.ToDatetime() == timedelta(minutes=30)
    assert [h.kind for h in why.history] == ["assigned"]
    overflowed = assignment(admin, swiss["lead_id"])
    assert overflowed.rule_id == "rest" and "after dach had no available rep" in overflowed.reason
    assert any(c.skipped_reason == "territory does not cover ch" for c in overflowed.considered)
    assert {e["lead_id"] for e in emitted.of_type("task_created")} == set(owners)
    [change] = config_events.collect(1)
    assert (change["kind"], change["version"], change["changed_by"]) == ("RoutingPolicy", "routing-policy@1", "admin")


def test_a_bad_policy_is_refused_by_path_and_the_live_one_stays(run_service, infra, tokens):
    service, admin = start(run_service, infra, tokens)
    builtin = admin.GetRoutingPolicy(routing_pb2.GetRoutingPolicyRequest()).policy
    assert (builtin.version, builtin.live, builtin.number) == ("builtin", True, 0)

    error = admin.error("PutRoutingPolicy", routing_pb2.PutRoutingPolicyRequest(definition=struct(
        {"rules": [{"id": "x", "strategy": "coin_flip"}], "escalation": {"max_hops": 99}})))
    checked = admin.PutRoutingPolicy(routing_pb2.PutRoutingPolicyRequest(
        definition=struct({"rules": [{"id": "all"}]}), validate_only=True)).policy
    manager = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["manager"])
    denied = manager.error("PutRoutingPolicy", routing_pb2.PutRoutingPolicyRequest(
        definition=struct({"rules": [{"id": "all"}]})))

    assert error.code == StatusCode.INVALID_ARGUMENT
    assert set(violations_of(error.status)) == {"rules[0].strategy", "escalation.max_hops"}
    assert checked.version == "" and denied.code == StatusCode.PERMISSION_DENIED
    assert RoutingPolicyDocument.objects.count() == 0
    first = admin.PutRoutingPolicy(routing_pb2.PutRoutingPolicyRequest(
        definition=struct({"rules": [{"id": "all", "strategy": "least_loaded"}]}))).policy
    second = admin.PutRoutingPolicy(routing_pb2.PutRoutingPolicyRequest(
        definition=struct({"rules": [{"id": "all"}]}))).policy
    versions = admin.ListRoutingPolicyVersions(routing_pb2.ListRoutingPolicyVersionsRequest()).policies
    assert [(v.version, v.live) for v in versions] == [(second.version, True), (first.version, False)]
    old = admin.GetRoutingPolicy(routing_pb2.GetRoutingPolicyRequest(number=1)).policy
    assert old.definition["rules"][0]["strategy"] == "least_loaded" and not old.live
    assert admin.error("GetRoutingPolicy", routing_pb2.GetRoutingPolicyRequest(number=9)).code == \
        StatusCode.NOT_FOUND


def test_the_same_lead_is_never_assigned_twice(run_service, infra, tokens, tap, publish):
    service, admin = start(run_service, infra, tokens)
    put_rep(admin, "rep.one")
    put_rep(admin, "rep.two")
    emitted = tap("routing", "lead_assigned")
    event = qualified_event()

    publish("scoring", event)
    publish("scoring", event)  # redelivery
    publish("scoring", qualified_event(event["lead_id"]))  # the lead qualifies again later

    emitted.collect(1)
    assert len(emitted.settle(1.0)) == 1
    assert AssignmentDocument.objects(id=event["lead_id"]).count() == 1
    assert TaskDocument.objects(lead_id=event["lead_id"]).count() == 1
    owner = emitted.received[0]["rep_id"]
    reps = {r.rep_id: r.open_leads for r in admin.ListReps(routing_pb2.ListRepsRequest()).reps}
    assert reps == {"rep.one": int(owner == "rep.one"), "rep.two": int(owner == "rep.two")}


def test_capacity_and_sticky_accounts(run_service, infra, tokens, tap, publish):
    service, admin = start(run_service, infra, tokens)
    put_rep(admin, "small", capacity=1)
    put_rep(admin, "big")
    admin.PutRoutingPolicy(routing_pb2.PutRoutingPolicyRequest(definition=struct(
        {"rules": [{"id": "accounts", "strategy": "sticky", "then": "least_loaded"}]})))
    emitted = tap("routing", "lead_assigned")

    first = publish("scoring", qualified_event(company_domain="acme.example"))
    emitted.collect(1)
    same_account = publish("scoring", qualified_event(company_domain="acme.example"))
    emitted.collect(2)
    others = [publish("scoring", qualified_event()) for _ in range(3)]
    emitted.collect(5)

    owners = {e["lead_id"]: e["rep_id"] for e in emitted.received}
    assert owners[same_account["lead_id"]] == owners[first["lead_id"]]
    assert assignment(admin, same_account["lead_id"]).strategy == "sticky"
    assert Counter(owners.values())["small"] == 1  # capacity 1: one open lead at most
    assert admin.GetRep(routing_pb2.GetRepRequest(rep_id="small")).rep.open_leads == 1
    assert len(owners) == 5 and {owners[e["lead_id"]] for e in others} <= {"big", "small"}


def test_a_recount_of_open_leads_keeps_reservations_still_being_written(run_service, infra, tokens, tap, publish):
    service, admin = start(run_service, infra, tokens)
    put_rep(admin, "small", capacity=1)
    put_rep(admin, "big")
    repository = next(d for d in service.container.dependencies if isinstance(d, Routing)).get_dependency(None)
    repository.state.add_open("small", "lead-being-written")  # another replica's decision, not committed yet
    repository.state.forget_open_counts()  # the periodic recount comes due meanwhile
    emitted = tap("routing", "lead_assigned")

    for _ in range(3):
        publish("scoring", qualified_event())

    assert {e["rep_id"] for e in emitted.collect(3)} == {"big"}
    assert admin.GetRep(routing_pb2.GetRepRequest(rep_id="small")).rep.open_leads == 1


def test_an_unroutable_lead_waits_visibly_in_the_fallback_queue_until_a_rep_can_take_it(
        run_service, infra, tokens, tap, publish):
    service, admin = start(run_service, infra, tokens, **FAST_CLOCK)
    emitted = tap("routing", "lead_assigned")
    event = publish("scoring", qualified_event())

    assert wait_until(lambda: AssignmentDocument.objects(id=event["lead_id"], queued=True).count() == 1)
    [queued] = admin.ListFallbackQueue(routing_pb2.ListFallbackQueueRequest()).assignments
    assert (queued.lead_id, queued.queued, queued.rep_id) == (event["lead_id"], True, "")
    assert queued.reason == "fallback queue: no available rep under everyone"
    assert emitted.settle(0.3) == []
    nobody = admin.error("AssignLead", routing_pb2.AssignLeadRequest(lead_id=event["lead_id"]))
    assert nobody.code == StatusCode.FAILED_PRECONDITION and "no rep can take" in nobody.message
    put_rep(admin, f"late.{uuid.uuid4().hex[:6]}")

    [assigned] = emitted.collect(1)
    assert assigned["lead_id"] == event["lead_id"] and assigned["owner_version"] == 1
    assert admin.ListFallbackQueue(routing_pb2.ListFallbackQueueRequest()).assignments == []
    assert [h.kind for h in assignment(admin, event["lead_id"]).history] == ["queued", "assigned"]


def test_leads_that_waited_before_the_fallback_queue_existed_are_queued_when_routing_starts(
        run_service, infra, tokens, tap):
    prefix = f"{infra.db_prefix}p{uuid.uuid4().hex[:6]}"
    lead_id = str(uuid.uuid4())
    with pymongo.MongoClient(infra.mongo_uri) as client:
        client[database_name(prefix, "routing")]["pending_leads"].insert_one({
            "_id": lead_id, "lead": {"lead_id": lead_id, "country": "DE", "captured_at": iso(utcnow())},
            "qualified_at": utcnow()})
    service = start_isolated(run_service, infra, RoutingService, MONGODB_DB_PREFIX=prefix, **FAST_CLOCK)
    admin = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["admin"])
    emitted = tap("routing", "lead_assigned")

    [queued] = admin.ListFallbackQueue(routing_pb2.ListFallbackQueueRequest()).assignments
    put_rep(admin, "amy")

    assert queued.lead_id == lead_id and queued.queued
    [assigned] = emitted.collect(1)
    assert (assigned["lead_id"], assigned["rep_id"]) == (lead_id, "amy")
    assert AssignmentDocument._get_db()["pending_leads"].count_documents({}) == 0


# --- the SLA clock ------------------------------------------------------------------------------------------

def test_a_missed_deadline_warns_breaches_escalates_to_the_next_rep_then_queues(
        run_service, infra, tokens, tap, publish):
    service, admin = start(run_service, infra, tokens, **FAST_CLOCK)
    clock = clock_of(service)
    admin.PutTeam(routing_pb2.PutTeamRequest(team=routing_pb2.Team(team_id="team-a", name="A", managers=["boss"])))
    put_rep(admin, "boss", status=routing_pb2.REP_STATUS_PAUSED, role="manager")
    put_rep(admin, "amy")
    put_rep(admin, "bo")
    admin.PutRoutingPolicy(routing_pb2.PutRoutingPolicyRequest(definition=struct({
        "rules": [{"id": "all"}], "sla": {"first_response_minutes": 120, "warning_percent": 50},
        "escalation": {"action": "reassign", "max_hops": 1}})))
    emitted = tap("routing")
    lead_id = publish("scoring", qualified_event())["lead_id"]
    first_owner = emitted.wait_for(lambda e: e["event_type"] == "lead_assigned")[0]["rep_id"]
    assert emitted.settle(0.5) and not emitted.of_type("sla_warning")

    clock.advance(timedelta(minutes=61))
    [warning] = emitted.wait_for(lambda e: e["event_type"] == "sla_warning")
    assert (warning["lead_id"], warning["rep_id"]) == (lead_id, first_owner)
    clock.advance(timedelta(minutes=60))
    [breach] = emitted.wait_for(lambda e: e["event_type"] == "sla_breached")
    [moved] = emitted.wait_for(lambda e: e["event_type"] == "lead_reassigned")

    second_owner = {"amy": "bo", "bo": "amy"}[first_owner]
    assert (breach["rep_id"], breach["escalation"]) == (first_owner, "reassign")
    assert (moved["rep_id"], moved["previous_rep_id"], moved["kind"], moved["owner_version"]) == \
        (second_owner, first_owner, "escalated", 2)
    now = assignment(admin, lead_id)
    assert (now.rep_id, now.task.escalation_hop, now.task.status) == (second_owner, 1, routing_pb2.TASK_STATUS_OPEN)
    old_task = TaskDocument.objects(lead_id=lead_id, rep_id=first_owner).get()
    assert old_task.status == "reassigned" and old_task.breached_at is not None
    assert admin.GetRep(routing_pb2.GetRepRequest(rep_id=first_owner)).rep.open_leads == 0

    clock.advance(timedelta(minutes=121))  # the second rep misses it too: hops are used up
    queued = emitted.wait_for(lambda e: e["event_type"] == "lead_reassigned" and e["queued"])
    assert queued[0]["rep_id"] == "" and queued[0]["kind"] == "queued"
    final = assignment(admin, lead_id)
    assert final.queued and [h.kind for h in final.history] == ["assigned", "escalated", "queued"]
    assert final.history[-1].reason == "not answered after 1 escalations"
    assert [a.lead_id for a in admin.ListFallbackQueue(routing_pb2.ListFallbackQueueRequest()).assignments] == \
        [lead_id]
    emitted.settle(0.5)
    notified = [e for e in emitted.of_type("notification_requested") if e["lead_id"] == lead_id]
    assert {"lead_assigned", "sla_warning", "lead_escalated", "lead_queued"} <= {e["kind"] for e in notified}
    assert any(r["rep_id"] == "boss" for e in notified if e["kind"] == "lead_queued" for r in e["recipients"])
    # Nothing more happens to a queued lead on its own: it waits for a manager.
    clock.advance(timedelta(days=1))
    assert len(emitted.settle(0.6)) == len(emitted.received) and assignment(admin, lead_id).queued


def test_first_contact_stops_the_clock_and_records_time_to_first_touch(run_service, infra, tokens, tap, publish):
    service, admin = start(run_service, infra, tokens, **FAST_CLOCK)
    clock = clock_of(service)
    put_rep(admin, "amy")
    emitted = tap("routing")
    lead_id = publish("scoring", qualified_event())["lead_id"]
    emitted.wait_for(lambda e: e["event_type"] == "task_created")

    clock.advance(timedelta(minutes=20))
    contacted_at = iso(clock.now())
    contact = new_event("lead_contacted", {"lead_id": lead_id, "activity_id": "A-1"}, rep_id="amy",
                        contacted_at=contacted_at, type="call")
    publish("opportunity", contact)
    publish("opportunity", contact)  # redelivered
    [done] = emitted.wait_for(lambda e: e["event_type"] == "task_completed")
    clock.advance(timedelta(hours=5))
    later = emitted.settle(0.8)

    assert (done["completed_by"], done["first_touch"], done["met_sla"]) == ("lead_contacted", True, True)
    assert 20 * 60 <= done["first_touch_seconds"] < 21 * 60
    assert not [e for e in later if e["event_type"] in ("sla_warning", "sla_breached", "task_completed")
                and e is not done]
    task = assignment(admin, lead_id).task
    assert task.status == routing_pb2.TASK_STATUS_COMPLETED and task.completed_by == "lead_contacted"
    assert assignment(admin, lead_id).first_touch_at.ToJsonString()[:16] == contacted_at[:16]


def test_notify_manager_escalation_posts_a_signed_message_to_the_teams_webhook(
        run_service, infra, tokens, tap, publish):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers.get("X-Leadflow-Signature"), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        service, admin = start(run_service, infra, tokens, NOTIFY_WEBHOOK_SECRET="s3cret", **FAST_CLOCK)
        admin.PutTeam(routing_pb2.PutTeamRequest(team=routing_pb2.Team(
            team_id="team-a", name="A", managers=["boss"],
            webhook_url=f"http://127.0.0.1:{server.server_port}/leadflow")))
        put_rep(admin, "boss", status=routing_pb2.REP_STATUS_PAUSED)
        put_rep(admin, "amy")
        admin.PutRoutingPolicy(routing_pb2.PutRoutingPolicyRequest(definition=struct({
            "rules": [{"id": "all"}], "escalation": {"action": "notify_manager"},
            "sla": {"first_response_minutes": 10}})))
        emitted = tap("routing", "sla_breached", "lead_reassigned")
        lead_id = publish("scoring", qualified_event())["lead_id"]
        assert wait_until(lambda: received)  # the rep hears about the new lead on the team channel
        clock_of(service).advance(timedelta(minutes=11))
        emitted.collect(1)

        assert wait_until(lambda: any(json.loads(body)["kind"] == "sla_escalated" for _, body in received))
        signature, body = next((s, b) for s, b in received if json.loads(b)["kind"] == "sla_escalated")
        message = json.loads(body)
        assert signature == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert message["lead_id"] == lead_id and [r["rep_id"] for r in message["recipients"]] == ["boss"]
        assert "amy missed the first-response deadline" in message["message"]
        assert assignment(admin, lead_id).rep_id == "amy"  # told, not moved
        assert emitted.settle(0.5) and not emitted.of_type("lead_reassigned")
    finally:
        server.shutdown()


# --- tasks, manual assignment and reassignment ------------------------------------------------------------------

def test_reps_see_and_complete_only_their_own_tasks(run_service, infra, tokens, tap, publish):
    service, admin = start(run_service, infra, tokens)
    put_rep(admin, "rep.one")
    emitted = tap("routing", "task_completed")
    lead_id = publish("scoring", qualified_event())["lead_id"]
    wait_until(lambda: AssignmentDocument.objects(id=lead_id).count())

    rep = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["rep"])
    other = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["other_rep"])
    [task] = rep.ListTasks(routing_pb2.ListTasksRequest(status=routing_pb2.TASK_STATUS_OPEN)).tasks
    assert (task.rep_id, task.lead_id) == ("rep.one", lead_id)
    assert other.error("GetAssignment", routing_pb2.GetAssignmentRequest(lead_id=lead_id)).code == \
        StatusCode.PERMISSION_DENIED
    assert other.error("ListTasks", routing_pb2.ListTasksRequest(rep_id="rep.one")).code == \
        StatusCode.PERMISSION_DENIED
    assert other.error("CompleteTask", routing_pb2.CompleteTaskRequest(task_id=task.task_id)).code == \
        StatusCode.PERMISSION_DENIED
    overdue = admin.ListTasks(routing_pb2.ListTasksRequest(due_before={"seconds": int(utcnow().timestamp())}))
    assert overdue.tasks == []

    done = rep.CompleteTask(routing_pb2.CompleteTaskRequest(task_id=task.task_id)).task
    again = rep.CompleteTask(routing_pb2.CompleteTaskRequest(task_id=task.task_id)).task

    assert (done.status, done.completed_by) == (routing_pb2.TASK_STATUS_COMPLETED, "rep.one")
    assert again.completed_at == done.completed_at
    [completed] = emitted.collect(1)
    assert completed["first_touch"] and emitted.settle(0.3) == [completed]
    assert rep.ListTasks(routing_pb2.ListTasksRequest(status=routing_pb2.TASK_STATUS_OPEN)).tasks == []


def test_managers_reassign_with_a_reason_and_the_history_is_kept(run_service, infra, tokens, tap, publish):
    service, admin = start(run_service, infra, tokens)
    put_rep(admin, "rep.one")  # the rep and manager tokens belong to team-a
    lead_id = publish("scoring", qualified_event())["lead_id"]
    wait_until(lambda: AssignmentDocument.objects(id=lead_id).count())
    put_rep(admin, "rep.two")
    put_rep(admin, "rep.b", "team-b")
    manager = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["manager"])
    emitted = tap("routing", "lead_reassigned")

    missing = manager.error("ReassignLead", routing_pb2.ReassignLeadRequest(lead_id=lead_id, rep_id="rep.two"))
    foreign = manager.error("ReassignLead", routing_pb2.ReassignLeadRequest(
        lead_id=lead_id, rep_id="rep.b", reason="speaks German"))
    moved = manager.ReassignLead(routing_pb2.ReassignLeadRequest(
        lead_id=lead_id, rep_id="rep.two", reason="rep.one is on sick leave")).assignment
    by_policy = manager.ReassignLead(routing_pb2.ReassignLeadRequest(lead_id=lead_id, reason="rebalance")).assignment

    assert missing.code == StatusCode.INVALID_ARGUMENT and set(violations_of(missing.status)) == {"reason"}
    assert foreign.code == StatusCode.PERMISSION_DENIED
    assert (moved.rep_id, moved.history[-1].kind, moved.history[-1].by, moved.history[-1].reason) == \
        ("rep.two", "reassigned", "manager.wang", "rep.one is on sick leave")
    # The policy chooses among reps who have not had the lead: only rep.b is left.
    assert by_policy.rep_id == "rep.b" and [h.rep_id for h in by_policy.history] == ["rep.one", "rep.two", "rep.b"]
    events = emitted.collect(2)
    assert [(e["previous_rep_id"], e["rep_id"], e["owner_version"]) for e in events] == \
        [("rep.one", "rep.two", 2), ("rep.two", "rep.b", 3)]
    assert TaskDocument.objects(lead_id=lead_id, status="open").count() == 1


def test_manual_assignment_of_a_lead_routing_has_not_seen(run_service, infra, tokens, tap):
    service, admin = start(run_service, infra, tokens)
    put_rep(admin, "amy")
    put_rep(admin, "bo")
    emitted = tap("routing", "lead_assigned")
    lead = struct({"country": "DE", "first_name": "Ann", "company": "Acme", "captured_at": iso(utcnow())})

    no_snapshot = admin.error("AssignLead", routing_pb2.AssignLeadRequest(lead_id="L-manual-0"))
    unknown_rep = admin.error("AssignLead", routing_pb2.AssignLeadRequest(lead_id="L-manual-1", lead=lead,
                                                                           rep_id="nobody"))
    direct = admin.AssignLead(routing_pb2.AssignLeadRequest(
        lead_id=f"L-{uuid.uuid4().hex[:8]}", lead=lead, rep_id="bo", reason="met at the booth")).assignment
    routed = admin.AssignLead(routing_pb2.AssignLeadRequest(lead_id=f"L-{uuid.uuid4().hex[:8]}", lead=lead))
    again = admin.error("AssignLead", routing_pb2.AssignLeadRequest(lead_id=direct.lead_id, lead=lead))

    assert no_snapshot.code == StatusCode.INVALID_ARGUMENT and set(violations_of(no_snapshot.status)) == {"lead"}
    assert unknown_rep.code == StatusCode.NOT_FOUND
    assert (direct.rep_id, direct.strategy, direct.history[0].reason, direct.history[0].by) == \
        ("bo", "manual", "met at the booth", "admin")
    assert routed.assignment.rep_id in {"amy", "bo"} and routed.assignment.strategy == "weighted_round_robin"
    assert again.code == StatusCode.FAILED_PRECONDITION
    assert {e["lead_id"] for e in emitted.collect(2)} == {direct.lead_id, routed.assignment.lead_id}


# --- reps and teams -------------------------------------------------------------------------------------------------

def test_rep_changes_are_validated_and_guarded(run_service, infra, tokens):
    service, admin = start(run_service, infra, tokens)
    error = admin.error("PutRep", routing_pb2.PutRepRequest(rep=routing_pb2.Rep(
        rep_id="bad id!", email="x", weight=500, size_bands=["huge"], time_zone="Mars/Base",
        working_hours={"mon": "18:00-09:00"})))
    assert error.code == StatusCode.INVALID_ARGUMENT
    assert set(violations_of(error.status)) == {"rep.rep_id", "rep.name", "rep.team", "rep.email", "rep.weight",
                                                "rep.size_bands[0]", "rep.calendar.time_zone",
                                                "rep.calendar.hours[mon]"}
    stored = put_rep(admin, "li.na", time_zone="Asia/Shanghai", working_hours={"mon": "09:00-18:00"},
                     holidays=["2026-10-01"], size_bands=["1-50"], territories=["CN"])
    assert (stored.time_zone, dict(stored.working_hours), list(stored.holidays), list(stored.size_bands)) == \
        ("Asia/Shanghai", {"mon": "09:00-18:00"}, ["2026-10-01"], ["1-50"])
    assert admin.GetRep(routing_pb2.GetRepRequest(rep_id="li.na")).rep == stored

    manager = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["manager"])
    foreign = routing_pb2.PutRepRequest(rep=routing_pb2.Rep(rep_id="x.y", name="X", team="team-b"))
    assert manager.error("PutRep", foreign).code == StatusCode.PERMISSION_DENIED
    rep = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["rep"])
    assert rep.error("PutRep", foreign).code == StatusCode.PERMISSION_DENIED
    assert admin.error("GetRep", routing_pb2.GetRepRequest(rep_id="x.y")).code == StatusCode.NOT_FOUND


def test_a_rep_marks_their_own_holiday_and_not_someone_elses(run_service, infra, tokens):
    service, admin = start(run_service, infra, tokens)
    put_rep(admin, "rep.one")
    put_rep(admin, "rep.two")
    rep = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["rep"])
    start_at = int(utcnow().timestamp())

    away = rep.SetRepAvailability(routing_pb2.SetRepAvailabilityRequest(
        rep_id="rep.one", away_from={"seconds": start_at}, away_until={"seconds": start_at + 7 * 86400},
        away_note="holiday")).rep
    backwards = rep.error("SetRepAvailability", routing_pb2.SetRepAvailabilityRequest(
        rep_id="rep.one", away_from={"seconds": start_at}, away_until={"seconds": start_at - 1}))
    not_mine = rep.error("SetRepAvailability", routing_pb2.SetRepAvailabilityRequest(rep_id="rep.two"))

    assert away.away_note == "holiday" and away.away_until.seconds == start_at + 7 * 86400
    assert set(violations_of(backwards.status)) == {"away_until"}
    assert not_mine.code == StatusCode.PERMISSION_DENIED


def test_teams_and_rep_listing_pages(run_service, infra, tokens):
    service, admin = start(run_service, infra, tokens)
    team = f"page-{uuid.uuid4().hex[:6]}"
    for i in range(5):
        put_rep(admin, f"{team}.{i:02}", team)
    admin.PutTeam(routing_pb2.PutTeamRequest(team=routing_pb2.Team(team_id=team, name="Paging", managers=["m"])))
    bad = admin.error("PutTeam", routing_pb2.PutTeamRequest(team=routing_pb2.Team(team_id="a b")))

    first = admin.ListReps(routing_pb2.ListRepsRequest(team=team, page={"page_size": 3}))
    second = admin.ListReps(routing_pb2.ListRepsRequest(team=team, page={"page_size": 3,
                                                                         "page_token": first.page.next_page_token}))
    assert [r.rep_id for r in first.reps] + [r.rep_id for r in second.reps] == [f"{team}.{i:02}" for i in range(5)]
    assert second.page.next_page_token == ""
    assert set(violations_of(bad.status)) == {"team.team_id", "team.name"}
    assert [t.team_id for t in admin.ListTeams(routing_pb2.ListTeamsRequest()).teams] == [team]
    assert list(admin.GetTeam(routing_pb2.GetTeamRequest(team_id=team)).team.managers) == ["m"]


def _batches(handler: str) -> tuple[float, float]:
    """(batches, events) the routing consumer ``handler`` has handled in this process so far."""
    from services.common import metrics
    samples = {sample.name: sample.value for sample in metrics.EVENT_BATCH_SIZE.collect()[0].samples
               if sample.labels.get("service") == "routing" and sample.labels.get("handler") == handler}
    return samples.get("leadflow_event_batch_size_count", 0.0), samples.get("leadflow_event_batch_size_sum", 0.0)


def test_leads_decided_as_a_batch_are_shared_as_one_by_one_and_each_assigned_once(
        run_service, infra, tokens, tap, publish):
    """Forty qualified leads wait in the queue when routing starts, so they are decided in batches
    under one lock each: the four reps still get ten each (their turns and open counts carried from
    one decision to the next), a redelivered event in the same stream changes nothing, and the open
    counts in Redis match the assignments."""
    from nameko import config
    service, admin = start(run_service, infra, tokens)
    for rep in ("amy", "bo", "chen", "dana"):
        put_rep(admin, rep)
    own = {key: config[key] for key in ("MONGODB_DB_PREFIX", "REDIS_KEY_PREFIX")}
    service.stop()
    events = [qualified_event() for _ in range(40)]
    for event in events[:25] + [events[3]] + events[25:]:
        publish("scoring", event)
    emitted = tap("routing", "lead_assigned")
    batches_before, handled_before = _batches("handle_lead_qualified")

    service = run_service(RoutingService, **own)
    admin = service.grpc(routing_pb2_grpc.RoutingServiceStub, tokens["admin"])

    wanted = {event["lead_id"] for event in events}
    assert wait_until(lambda: wanted <= {e["lead_id"] for e in emitted.collect(40, timeout=1)}, timeout=30)
    received = [e for e in emitted.settle(1.0) if e["lead_id"] in wanted]
    assert len(received) == 40  # each lead once, the redelivered event included
    assert sorted(Counter(e["rep_id"] for e in received).values()) == [10, 10, 10, 10]
    reps = {r.rep_id: r.open_leads for r in admin.ListReps(routing_pb2.ListRepsRequest()).reps}
    assert reps == {"amy": 10, "bo": 10, "chen": 10, "dana": 10}
    batches, handled = _batches("handle_lead_qualified")
    assert handled - handled_before == 41 and batches - batches_before < 41  # some arrived together
