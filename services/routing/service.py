"""Routing service: assigns qualified leads to reps with a response deadline."""

from leadflow.routing.v1 import routing_pb2, routing_pb2_grpc
from nameko import config

from services.common import metrics
from services.common.auth import Role
from services.common.mappers import next_page_token, page_window
from services.common.messaging import event_handler
from services.common.rpc import LeadflowGrpc
from services.common.service_base import LeadflowService
from services.routing import domain, mappers
from services.routing.dependencies import RoundRobin, RoutingStore

routing_rpc = LeadflowGrpc.implementing(routing_pb2_grpc.RoutingServiceStub)
ADMINS = {Role.ADMIN, Role.MANAGER}


class RoutingService(LeadflowService):
    name = "routing"
    routing = RoutingStore()
    tickets = RoundRobin()

    @event_handler("scoring", "lead_qualified")
    def handle_lead_qualified(self, event):
        assignment = self.routing.assign_once(event, "handle_lead_qualified", event["lead"], self.tickets,
                                              config["SLA_FIRST_RESPONSE_MINUTES"])
        if isinstance(assignment, domain.Assignment):
            self._count_assignment(assignment)
        return assignment

    def _count_assignment(self, assignment):
        metrics.TASKS_CREATED.inc()
        if assignment.lead_captured_at:
            latency = (assignment.assigned_at - assignment.lead_captured_at).total_seconds()
            metrics.ASSIGNMENT_LATENCY.observe(max(latency, 0.0))

    @routing_rpc(roles=ADMINS)
    def PutRep(self, request, context):
        rep = domain.validate_rep(mappers.rep_from_proto(request.rep))
        domain.ensure_may_change_rep(self.caller, rep)
        self.routing.put_rep(rep)
        if rep.status == domain.RepStatus.ACTIVE:
            for assignment in self.routing.assign_pending(self.tickets, config["SLA_FIRST_RESPONSE_MINUTES"]):
                self._count_assignment(assignment)
        return routing_pb2.PutRepResponse(rep=mappers.rep_to_proto(rep))

    @routing_rpc
    def GetRep(self, request, context):
        return routing_pb2.GetRepResponse(rep=mappers.rep_to_proto(self.routing.get_rep(request.rep_id)))

    @routing_rpc
    def ListReps(self, request, context):
        offset, limit = page_window(request.page)
        reps = self.routing.list_reps(request.team, offset, limit)
        return routing_pb2.ListRepsResponse(
            reps=[mappers.rep_to_proto(r) for r in reps],
            page={"next_page_token": next_page_token(offset, limit, len(reps))})

    @routing_rpc
    def GetAssignment(self, request, context):
        assignment = self.routing.get_assignment(request.lead_id)
        domain.ensure_may_see_assignment(self.caller, assignment)
        return routing_pb2.GetAssignmentResponse(assignment=mappers.assignment_to_proto(assignment))

    @routing_rpc
    def ListTasks(self, request, context):
        rep_id = domain.task_owner_filter(self.caller, request.rep_id)
        offset, limit = page_window(request.page)
        tasks = self.routing.list_tasks(rep_id, mappers.TASK_STATUS_FROM_PROTO.get(request.status), offset, limit)
        return routing_pb2.ListTasksResponse(
            tasks=[mappers.task_to_proto(t) for t in tasks],
            page={"next_page_token": next_page_token(offset, limit, len(tasks))})
