"""Opportunity learns lead ownership from lead_assigned and records activities; the first real
contact emits lead_contacted once."""
import uuid
from datetime import datetime, timedelta, timezone

from grpc import StatusCode
from leadflow.opportunity.v1 import opportunity_pb2, opportunity_pb2_grpc

from services.common.mappers import to_timestamp
from services.opportunity.models import ActivityDocument, LeadOwnershipDocument
from services.opportunity.service import OpportunityService
from tests.support import new_event, violations_of, wait_until


def assign(publish, rep_id="rep.one", team="team-a") -> str:
    lead_id = str(uuid.uuid4())
    publish("routing", new_event("lead_assigned", {"lead_id": lead_id, "rep_id": rep_id}, team=team,
                                 assigned_at="2026-11-29T10:00:01.000Z", source="web", task_id="t-1"))
    assert wait_until(lambda: LeadOwnershipDocument.objects(id=lead_id).count())
    return lead_id


def log(lead_id, activity_type, **fields):
    return opportunity_pb2.LogActivityRequest(lead_id=lead_id, type=activity_type, **fields)


def test_first_contact_is_announced_once(run_service, tokens, tap, publish):
    service = run_service(OpportunityService)
    contacted = tap("opportunity", "lead_contacted")
    lead_id = assign(publish)
    rep = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["rep"])

    note = rep.LogActivity(log(lead_id, opportunity_pb2.ACTIVITY_TYPE_NOTE, body="researching the account"))
    call = rep.LogActivity(log(lead_id, opportunity_pb2.ACTIVITY_TYPE_CALL, outcome="connected"))
    email = rep.LogActivity(log(lead_id, opportunity_pb2.ACTIVITY_TYPE_EMAIL, subject="Follow-up"))

    assert (note.first_contact, call.first_contact, email.first_contact) == (False, True, False)
    [event] = contacted.collect(1)
    assert event["lead_id"] == lead_id and event["rep_id"] == "rep.one" and event["activity_type"] == "call"
    assert contacted.settle(0.5) == [event]
    listed = rep.ListActivities(opportunity_pb2.ListActivitiesRequest(lead_id=lead_id)).activities
    assert [a.activity_id for a in listed] == [email.activity.activity_id, call.activity.activity_id,
                                               note.activity.activity_id]
    assert {a.logged_by for a in listed} == {"rep.one"}


def test_reps_work_only_their_own_leads(run_service, tokens, publish):
    service = run_service(OpportunityService)
    lead_id = assign(publish, rep_id="rep.one", team="team-a")
    request = log(lead_id, opportunity_pb2.ACTIVITY_TYPE_CALL)

    other = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["other_rep"])
    assert other.error("LogActivity", request).code == StatusCode.PERMISSION_DENIED
    manager = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["manager"])
    assert manager.LogActivity(request).first_contact is True  # the rep's manager may
    outsider_lead = assign(publish, rep_id="rep.far", team="team-b")
    assert manager.error("LogActivity", log(outsider_lead, opportunity_pb2.ACTIVITY_TYPE_CALL)).code == \
        StatusCode.PERMISSION_DENIED
    assert ActivityDocument.objects(lead_id=outsider_lead).count() == 0


def test_bad_activities_are_rejected_by_field(run_service, tokens, publish):
    service = run_service(OpportunityService)
    lead_id = assign(publish)
    rep = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["rep"])
    future = to_timestamp(datetime.now(timezone.utc) + timedelta(days=1))

    error = rep.error("LogActivity", opportunity_pb2.LogActivityRequest(
        lead_id=lead_id, subject="s" * 201, body="b" * 10_001, occurred_at=future))

    assert error.code == StatusCode.INVALID_ARGUMENT
    assert set(violations_of(error.status)) == {"type", "subject", "body", "occurred_at"}
    assert ActivityDocument.objects(lead_id=lead_id).count() == 0
    unknown = rep.error("LogActivity", log("never-assigned", opportunity_pb2.ACTIVITY_TYPE_CALL))
    assert unknown.code == StatusCode.NOT_FOUND
