"""A lead's whole journey through the five running services."""
from collections import defaultdict

from leadflow.opportunity.v1 import opportunity_pb2
from leadflow.reporting.v1 import reporting_pb2
from leadflow.routing.v1 import routing_pb2

from tests.e2e.conftest import new_batch, qualifying_lead, submit_all
from tests.support import EventTap, wait_until


def test_200_leads_are_each_assigned_exactly_once(platform, reps):
    assigned = EventTap(platform.infra.amqp_uri, "routing", ("lead_assigned",))
    batch = new_batch()
    client = platform.client("integration")

    lead_ids = submit_all(client, [qualifying_lead(i, batch) for i in range(200)])

    assert len(set(lead_ids)) == 200
    assigned.collect(200, timeout=60)
    assigned.settle(1.0)
    event_ids_by_lead = defaultdict(set)
    for event in assigned.received:
        event_ids_by_lead[event["lead_id"]].add(event["event_id"])
    assert set(event_ids_by_lead) == set(lead_ids), f"{len(event_ids_by_lead)} of 200 leads assigned"
    assert all(len(ids) == 1 for ids in event_ids_by_lead.values())
    tasks = platform.db("routing")["tasks"]
    assert tasks.count_documents({"lead_id": {"$in": lead_ids}}) == 200
    per_rep = defaultdict(int)
    for event in assigned.received:
        per_rep[event["rep_id"]] += 1
    assert set(per_rep) <= set(reps) and max(per_rep.values()) - min(per_rep.values()) <= 1
    assigned.close()


def test_a_lead_travels_from_capture_to_first_contact_and_the_funnel_shows_it(platform, reps):
    admin = platform.client("admin")
    batch = new_batch()
    [lead_id] = submit_all(admin, [qualifying_lead(0, batch)])

    assignment = wait_until(lambda: _assignment(admin, lead_id), timeout=15)
    assert assignment and assignment.rep_id in reps
    assert assignment.task.due_at.ToDatetime() > assignment.assigned_at.ToDatetime()

    # The rep's manager logs the call (managers may work their team's leads); reporting sees it.
    manager = platform.client("manager")
    logged = wait_until(lambda: _log_call(manager, lead_id), timeout=15)
    assert logged.first_contact
    again = manager.opportunity.LogActivity(opportunity_pb2.LogActivityRequest(
        lead_id=lead_id, type=opportunity_pb2.ACTIVITY_TYPE_MEETING, outcome="demo booked"))
    assert not again.first_contact

    def funnel():
        steps = admin.reporting.GetFunnel(reporting_pb2.GetFunnelRequest(source="referral")).steps
        return {reporting_pb2.FunnelStage.Name(s.stage): s.leads for s in steps}
    progress = platform.db("reporting")["lead_progress"]
    assert wait_until(lambda: progress.count_documents({"_id": lead_id, "contacted_at": {"$ne": None}}), timeout=15)
    counts = funnel()
    assert counts["FUNNEL_STAGE_CAPTURED"] >= counts["FUNNEL_STAGE_ASSIGNED"] >= counts["FUNNEL_STAGE_CONTACTED"] >= 1
    admin.close()
    manager.close()


def _log_call(client, lead_id):
    """Opportunity learns of the assignment from an event, a moment after routing made it."""
    import grpc
    try:
        return client.opportunity.LogActivity(opportunity_pb2.LogActivityRequest(
            lead_id=lead_id, type=opportunity_pb2.ACTIVITY_TYPE_CALL, outcome="connected"))
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def _assignment(client, lead_id):
    import grpc
    try:
        return client.routing.GetAssignment(routing_pb2.GetAssignmentRequest(lead_id=lead_id)).assignment
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise
