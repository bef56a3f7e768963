"""Routing service: the right rep within a second, a response deadline, and escalation when it slips."""
import logging
import time

from google.protobuf import struct_pb2
from leadflow.common.v1 import common_pb2
from leadflow.routing.v1 import routing_pb2, routing_pb2_grpc

from services.common import metrics
from services.common.auth import Role
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, Validator
from services.common.events import parse_iso
from services.common.mappers import from_timestamp, next_page_token, page_window, struct_to_dict, to_timestamp
from services.common.messaging import event_handler
from services.common.rpc import LeadflowGrpc
from services.common.service_base import LeadflowService
from services.common.timers import configured_timer
from services.routing import decision as decisions
from services.routing import domain, mappers, notifier
from services.routing.dependencies import POLICY_PREFIX, Clock, Routing
from services.routing.policy import BUILTIN_VERSION, builtin_definition, compile_policy

log = logging.getLogger(__name__)
routing_rpc = LeadflowGrpc.implementing(routing_pb2_grpc.RoutingServiceStub)
ADMINS = {Role.ADMIN, Role.MANAGER}
TICK_BUDGET_SECONDS = 4.0
OPEN_LEADS_RECOUNT_SECONDS = 600


class RoutingService(LeadflowService):
    name = "routing"
    routing = Routing()
    clock = Clock()

    # ---- events ---------------------------------------------------------------------------------------

    # Each handler takes a batch of events (services.common.messaging.BatchEventHandler) and answers
    # one outcome per event.

    @event_handler("scoring", "lead_qualified")
    def handle_lead_qualified(self, events):
        started = time.perf_counter()
        outcomes = self.routing.assign_new_each(events, "handle_lead_qualified", self.clock.now())
        metrics.ROUTING_DECISION_SECONDS.observe((time.perf_counter() - started) / len(events))
        for outcome in outcomes:
            if isinstance(outcome, domain.Assignment):
                self._count_assignment(outcome)
        return outcomes

    @event_handler("opportunity", "lead_contacted")
    def handle_lead_contacted(self, events):
        """The first call, email or meeting stops the SLA clock (one transaction per event: a task
        reassigned away meanwhile refuses its event alone)."""
        outcomes = []
        for event in events:
            contacted_at = parse_iso(event.get("contacted_at") or event["occurred_at"])
            outcomes.append(self.routing.first_contact(event, "handle_lead_contacted", contacted_at))
            self._count_completion(outcomes[-1])
        return outcomes

    @event_handler("opportunity", "lead_converted")
    def handle_lead_converted(self, events):
        """A converted lead no longer counts toward its rep's capacity, nor does one sales
        disqualified or sent back to nurture."""
        return self.routing.release(events, "handle_lead_converted")

    @event_handler("opportunity", "lead_sales_disqualified")
    def handle_lead_sales_disqualified(self, events):
        return self.routing.release(events, "handle_lead_sales_disqualified")

    @event_handler("opportunity", "lead_recycled")
    def handle_lead_recycled(self, events):
        return self.routing.release(events, "handle_lead_recycled")

    @event_handler("routing", "notification_requested")
    def handle_notification_requested(self, events):
        """Routing's notifier: logs every notification and posts it to the team's webhook when set."""
        for event in events:
            notifier.deliver(event)

    def _count_assignment(self, assignment):
        if assignment.queued:
            metrics.LEADS_QUEUED.inc()
            log.warning("lead %s went to the fallback queue: %s", assignment.lead_id, assignment.reason)
            return
        metrics.LEADS_ASSIGNED.labels(assignment.strategy).inc()
        metrics.TASKS_CREATED.inc()
        if assignment.lead_captured_at and assignment.assigned_at:
            latency = (assignment.assigned_at - assignment.lead_captured_at).total_seconds()
            metrics.ASSIGNMENT_LATENCY.observe(max(latency, 0.0))

    @staticmethod
    def _count_completion(result):
        if isinstance(result, tuple) and result[1] is not None:
            metrics.FIRST_TOUCH_SECONDS.observe(max(result[1], 0.0))

    # ---- the clock --------------------------------------------------------------------------------------

    @configured_timer("ROUTING_TIMER_SECONDS", 5.0)
    def tick(self):
        """Warnings, breaches and escalations come due; queued leads get another try. Every step is
        claimed with a conditional write, so several replicas ticking at once act once."""
        deadline = time.monotonic() + TICK_BUDGET_SECONDS
        now = self.clock.now()
        for task in self.routing.tasks_to_check(now):
            if time.monotonic() > deadline:
                break
            self._advance_sla(task, now)
        for assignment in self.routing.retry_queued(now):
            self._count_assignment(assignment)
        metrics.FALLBACK_QUEUE.set(self.routing.queue_size())
        self.routing.recount_open_leads_every(OPEN_LEADS_RECOUNT_SECONDS)

    def _advance_sla(self, task, now):
        if task.warned_at is None and task.breached_at is None and task.warn_at and now < task.due_at:
            if self.routing.warn(task, now):
                metrics.SLA_WARNINGS.inc()
            return
        policy = self.routing.policy()
        escalation = decisions.escalation_for(policy, task.escalation_hop)
        if task.breached_at is None:
            task = self.routing.breach(task, now, escalation.action)
            if task is None:
                return  # another replica got there first
            metrics.SLA_BREACHES.inc()
        assignment = self.routing.get_assignment(task.lead_id)
        if assignment.task is None or assignment.task.task_id != task.task_id:
            self.routing.stop_checking(task.task_id)  # the lead moved on meanwhile
            return
        if escalation.action == "notify_manager":
            if self.routing.notify_managers(task, now, assignment):
                metrics.ESCALATIONS.labels("notify_manager").inc()
            return
        if escalation.action == "reassign":
            reason = f"{task.rep_id} missed the first-response deadline (escalation {escalation.hop} of " \
                     f"{policy.max_hops})"
            moved = self.routing.change_owner(task.lead_id, now, "escalated", "routing", reason,
                                              expected_version=assignment.owner_version,
                                              expected_task=task.task_id, hop=escalation.hop)
        else:
            reason = f"not answered after {task.escalation_hop} escalations"
            moved = self.routing.change_owner(task.lead_id, now, "queued", "routing", reason,
                                              expected_version=assignment.owner_version, expected_task=task.task_id)
        if moved is not None:
            metrics.ESCALATIONS.labels(escalation.action).inc()
            metrics.REASSIGNMENTS.labels("queued" if moved.queued else "escalated").inc()
            if moved.queued:
                metrics.LEADS_QUEUED.inc()

    # ---- gRPC: reps and teams -----------------------------------------------------------------------------

    @routing_rpc(roles=ADMINS)
    def PutRep(self, request, context):
        rep, hours, holidays, time_zone = mappers.rep_from_proto(request.rep)
        rep = domain.validate_rep(rep, hours, holidays, time_zone)
        domain.ensure_may_change_rep(self.caller, rep)
        self.routing.put_rep(rep)
        self.routing.retry_queue_now(self.clock.now())
        return routing_pb2.PutRepResponse(rep=self._rep_proto(rep))

    def _rep_proto(self, rep):
        return mappers.rep_to_proto(rep, self.routing.open_leads([rep.rep_id])[rep.rep_id])

    @routing_rpc
    def GetRep(self, request, context):
        return routing_pb2.GetRepResponse(rep=self._rep_proto(self.routing.get_rep(request.rep_id)))

    @routing_rpc
    def ListReps(self, request, context):
        offset, limit = page_window(request.page)
        reps = self.routing.list_reps(request.team, offset, limit)
        counts = self.routing.open_leads([r.rep_id for r in reps])
        return routing_pb2.ListRepsResponse(
            reps=[mappers.rep_to_proto(r, counts[r.rep_id]) for r in reps],
            page={"next_page_token": next_page_token(offset, limit, len(reps))})

    @routing_rpc(roles=ADMINS | {Role.REP})
    def SetRepAvailability(self, request, context):
        rep = self.routing.get_rep(request.rep_id)
        domain.ensure_may_set_availability(self.caller, rep)
        away_from = from_timestamp(request.away_from, "away_from")
        away_until = from_timestamp(request.away_until, "away_until")
        check = Validator()
        if away_from or away_until:
            check.check(bool(away_from and away_until and away_from < away_until), "away_until",
                        "out of office needs both away_from and away_until, until after from")
        check.max_length(request.away_note, 500, "away_note")
        check.raise_if_invalid()
        rep = self.routing.set_availability(rep.rep_id, mappers.rep_status_from_proto(request.status), away_from,
                                            away_until, request.away_note.strip())
        self.routing.retry_queue_now(self.clock.now())
        return routing_pb2.SetRepAvailabilityResponse(rep=self._rep_proto(rep))

    @routing_rpc(roles={Role.ADMIN})
    def PutTeam(self, request, context):
        team = domain.validate_team(mappers.team_from_proto(request.team))
        self.routing.put_team(team)
        self.routing.retry_queue_now(self.clock.now())
        return routing_pb2.PutTeamResponse(team=mappers.team_to_proto(team))

    @routing_rpc
    def GetTeam(self, request, context):
        return routing_pb2.GetTeamResponse(team=mappers.team_to_proto(self.routing.get_team(request.team_id)))

    @routing_rpc
    def ListTeams(self, request, context):
        offset, limit = page_window(request.page)
        teams = self.routing.list_teams(offset, limit)
        return routing_pb2.ListTeamsResponse(teams=[mappers.team_to_proto(t) for t in teams],
                                             page={"next_page_token": next_page_token(offset, limit, len(teams))})

    # ---- gRPC: the policy ---------------------------------------------------------------------------------

    @routing_rpc(roles={Role.ADMIN})
    def PutRoutingPolicy(self, request, context):
        definition = struct_to_dict(request.definition)
        compile_policy(definition, "candidate")  # InvalidArgument names each bad path
        if request.validate_only:
            return routing_pb2.PutRoutingPolicyResponse(policy=_policy_proto(0, definition))
        document = self.routing.put_policy(definition, self.caller.id)
        self.routing.retry_queue_now(self.clock.now())
        return routing_pb2.PutRoutingPolicyResponse(policy=_policy_proto(
            document.id, document.definition, document.created_at, document.created_by, live=True))

    @routing_rpc(roles=ADMINS)
    def GetRoutingPolicy(self, request, context):
        live = self.routing.policy_document(0)
        document = self.routing.policy_document(request.number) if request.number else live
        if document is None:
            return routing_pb2.GetRoutingPolicyResponse(policy=_policy_proto(
                0, builtin_definition(self.routing.policy().first_response_minutes), live=True))
        return routing_pb2.GetRoutingPolicyResponse(policy=_policy_proto(
            document.id, document.definition, document.created_at, document.created_by,
            live=document.id == live.id))

    @routing_rpc(roles=ADMINS)
    def ListRoutingPolicyVersions(self, request, context):
        offset, limit = page_window(request.page)
        documents = self.routing.policy_versions(offset, limit)
        live = self.routing.policy_document(0)
        return routing_pb2.ListRoutingPolicyVersionsResponse(
            policies=[_policy_proto(d.id, d.definition, d.created_at, d.created_by, live=d.id == live.id)
                      for d in documents],
            page=common_pb2.PageResponse(next_page_token=next_page_token(offset, limit, len(documents))))

    # ---- gRPC: assignments --------------------------------------------------------------------------------

    @routing_rpc(roles=ADMINS | {Role.INTEGRATION})
    def AssignLead(self, request, context):
        lead_id = request.lead_id.strip()
        lead = struct_to_dict(request.lead, "lead") if request.HasField("lead") else {}
        check = Validator()
        check.required(lead_id, "lead_id")
        check.check(len(lead_id) <= 100, "lead_id", "at most 100 characters")
        check.check(not lead.get("lead_id") or lead["lead_id"] == lead_id, "lead.lead_id", "differs from lead_id")
        check.max_length(request.reason, 500, "reason")
        check.raise_if_invalid()
        target = self.routing.get_rep(request.rep_id) if request.rep_id else None
        if target is not None:
            domain.ensure_may_change_rep(self.caller, target)
        now = self.clock.now()
        reason = request.reason.strip() or f"assigned by {self.caller.id}"
        if self.routing.is_known(lead_id):
            current = self.routing.get_assignment(lead_id)
            if not current.queued:
                raise FailedPrecondition(f"lead {lead_id} is assigned to {current.rep_id} already; use ReassignLead")
            assignment = self.routing.change_owner(lead_id, now, "assigned", self.caller.id, reason,
                                                   target_rep=target, expected_version=current.owner_version)
        else:
            if not lead:
                raise InvalidArgument([FieldViolation("lead", "is required for a lead routing has not seen qualify")])
            lead["lead_id"] = lead_id
            assignment = self.routing.assign_new(lead, {}, now, manual_rep=target, by=self.caller.id,
                                                 reason=reason if target else "")
        if assignment is None:
            self._explain_no_move(lead_id)
        self._count_assignment(assignment)
        return routing_pb2.AssignLeadResponse(assignment=mappers.assignment_to_proto(
            self.routing.get_assignment(lead_id)))

    @routing_rpc(roles=ADMINS)
    def ReassignLead(self, request, context):
        check = Validator()
        check.required(request.lead_id.strip(), "lead_id")
        if check.required(request.reason.strip(), "reason"):
            check.max_length(request.reason, 500, "reason")
        check.raise_if_invalid()
        current = self.routing.get_assignment(request.lead_id)
        target = self.routing.get_rep(request.rep_id) if request.rep_id else None
        domain.ensure_may_reassign(self.caller, current, target)
        if target is not None and target.rep_id == current.rep_id:
            raise FailedPrecondition(f"lead {request.lead_id} is assigned to {target.rep_id} already")
        moved = self.routing.change_owner(request.lead_id, self.clock.now(), "reassigned", self.caller.id,
                                          request.reason.strip(), target_rep=target,
                                          expected_version=current.owner_version)
        if moved is None:
            self._explain_no_move(request.lead_id, current.owner_version)
        metrics.REASSIGNMENTS.labels("queued" if moved.queued else "manual").inc()
        return routing_pb2.ReassignLeadResponse(assignment=mappers.assignment_to_proto(
            self.routing.get_assignment(request.lead_id)))

    def _explain_no_move(self, lead_id: str, version_read: int | None = None):
        """Why a manual assignment changed nothing: nobody could take the lead, or someone else moved
        it first."""
        now = self.routing.get_assignment(lead_id)
        if now.queued and (version_read is None or now.owner_version == version_read):
            raise FailedPrecondition(f"no rep can take lead {lead_id} now (paused, away, outside working hours or "
                                     "at capacity); it stays in the fallback queue - name a rep to assign it anyway")
        raise FailedPrecondition(f"lead {lead_id} changed owner meanwhile (now {now.rep_id or 'queued'}); "
                                 "read it again")

    @routing_rpc
    def GetAssignment(self, request, context):
        assignment = self.routing.get_assignment(request.lead_id)
        domain.ensure_may_see_assignment(self.caller, assignment)
        return routing_pb2.GetAssignmentResponse(assignment=mappers.assignment_to_proto(assignment))

    @routing_rpc(roles=ADMINS | {Role.INTEGRATION})
    def ListFallbackQueue(self, request, context):
        offset, limit = page_window(request.page)
        queued = self.routing.fallback_queue(offset, limit)
        return routing_pb2.ListFallbackQueueResponse(
            assignments=[mappers.assignment_to_proto(a) for a in queued],
            page={"next_page_token": next_page_token(offset, limit, len(queued))})

    # ---- gRPC: tasks --------------------------------------------------------------------------------------

    @routing_rpc
    def ListTasks(self, request, context):
        rep_id = domain.task_owner_filter(self.caller, request.rep_id)
        offset, limit = page_window(request.page)
        tasks = self.routing.list_tasks(rep_id, mappers.TASK_STATUS_FROM_PROTO.get(request.status),
                                        from_timestamp(request.due_before, "due_before"), request.lead_id,
                                        offset, limit)
        return routing_pb2.ListTasksResponse(
            tasks=[mappers.task_to_proto(t) for t in tasks],
            page={"next_page_token": next_page_token(offset, limit, len(tasks))})

    @routing_rpc(roles=ADMINS | {Role.REP})
    def CompleteTask(self, request, context):
        domain.ensure_may_complete(self.caller, self.routing.get_task(request.task_id))
        result = self.routing.complete_task(request.task_id, self.caller.id, self.clock.now())
        self._count_completion(result)
        return routing_pb2.CompleteTaskResponse(task=mappers.task_to_proto(result[0]))


def _policy_proto(number: int, definition: dict, created_at=None, created_by: str = "", live: bool = False):
    struct = struct_pb2.Struct()
    struct.update(definition)
    version = f"{POLICY_PREFIX}{number}" if number else (BUILTIN_VERSION if live else "")
    return routing_pb2.RoutingPolicy(version=version, number=number, definition=struct,
                                     created_at=to_timestamp(created_at), created_by=created_by, live=live)
