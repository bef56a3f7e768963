"""Routing's repository (Mongo) and its shared round-robin counter (Redis)."""
import uuid

from services.common.events import parse_iso, utcnow
from services.common.redis_store import RedisProvider
from services.common.store import Store, get_or_not_found
from services.routing import domain, events
from services.routing.mappers import (assignment_from_document, assignment_to_document, rep_from_document,
                                      rep_to_document, task_from_document, task_to_document)
from services.routing.models import AssignmentDocument, PendingLeadDocument, RepDocument, TaskDocument

FIRST_RESPONSE = "first_response"


class RoundRobinTickets:
    """An atomically incremented counter per rep pool, shared by every routing replica."""

    def __init__(self, keys):
        self.keys = keys

    def next(self, pool: str) -> int:
        return self.keys.client.incr(self.keys.key("round-robin", pool)) - 1


class RoutingRepository:
    def __init__(self, store: Store):
        self.store = store

    # Reps -------------------------------------------------------------------------------------
    def put_rep(self, rep) -> None:
        rep_to_document(rep, utcnow()).save()

    def get_rep(self, rep_id: str):
        document = get_or_not_found(RepDocument, rep_id, "rep")
        return rep_from_document(document)

    def list_reps(self, team: str, offset: int, limit: int):
        query = RepDocument.objects(team=team) if team else RepDocument.objects()
        return [rep_from_document(d) for d in query.order_by("id").skip(offset).limit(limit)]

    def active_reps(self):
        return [rep_from_document(d) for d in RepDocument.objects(status=domain.RepStatus.ACTIVE.value)]

    # Assignment -------------------------------------------------------------------------------
    def assign_once(self, event: dict, handler: str, lead: dict, tickets: RoundRobinTickets, sla_minutes: int):
        return self.store.run_once(event, handler, lambda uow: self._assign(uow, lead, tickets, sla_minutes))

    def assign_pending(self, tickets: RoundRobinTickets, sla_minutes: int, limit: int = 500) -> list:
        """Assign leads that were waiting for a rep, oldest first."""
        assigned = []
        for pending in PendingLeadDocument.objects.order_by("qualified_at").limit(limit):
            assignment = self.store.run_in_transaction(
                lambda uow, lead=pending.lead: self._assign(uow, lead, tickets, sla_minutes, was_pending=True))
            if assignment:
                assigned.append(assignment)
        return assigned

    def _assign(self, uow, lead: dict, tickets: RoundRobinTickets, sla_minutes: int, was_pending: bool = False):
        lead_id = lead["lead_id"]
        pending = uow.db[PendingLeadDocument._get_collection_name()]
        if uow.find_one(AssignmentDocument, {"_id": lead_id}):
            if was_pending:
                pending.delete_one({"_id": lead_id}, session=uow.session)
            return None  # assigned already (by another replica, or from the pending queue)
        candidates = self.active_reps()
        now = utcnow()
        if not candidates:
            # Never silently unassigned: the lead waits, visibly, until a rep becomes available.
            uow.update_one(PendingLeadDocument, {"_id": lead_id},
                           {"$setOnInsert": {"lead": lead, "qualified_at": now}}, upsert=True)
            return None
        rep, reason = domain.choose_round_robin(candidates, tickets.next("all"))
        task = domain.Task(task_id=str(uuid.uuid4()), lead_id=lead_id, rep_id=rep.rep_id, kind=FIRST_RESPONSE,
                           due_at=domain.first_response_due(now, sla_minutes), status=domain.TaskStatus.OPEN,
                           created_at=now)
        captured_at = lead.get("captured_at")
        assignment = domain.Assignment(
            lead_id=lead_id, rep_id=rep.rep_id, team=rep.team, strategy=domain.ROUND_ROBIN,
            policy_version=domain.POLICY_VERSION, reason=reason,
            candidates=sorted(r.rep_id for r in candidates),
            lead_captured_at=parse_iso(captured_at) if captured_at else None, assigned_at=now, task=task)
        uow.insert(assignment_to_document(assignment))
        uow.insert(task_to_document(task))
        if was_pending:
            pending.delete_one({"_id": lead_id}, session=uow.session)
        uow.publish(*events.lead_assigned(assignment, lead))
        uow.publish(*events.task_created(task))
        return assignment

    def get_assignment(self, lead_id: str):
        document = get_or_not_found(AssignmentDocument, lead_id, "assignment for lead")
        task = TaskDocument.objects(id=document.task_id).first()
        return assignment_from_document(document, task_from_document(task) if task else None)

    def list_tasks(self, rep_id: str, status, offset: int, limit: int):
        query = {}
        if rep_id:
            query["rep_id"] = rep_id
        if status:
            query["status"] = status.value
        return [task_from_document(d) for d in
                TaskDocument.objects(**query).order_by("due_at", "id").skip(offset).limit(limit)]


class RoutingStore(Store):
    documents = (RepDocument, TaskDocument, AssignmentDocument, PendingLeadDocument)

    def get_dependency(self, worker_ctx):
        return RoutingRepository(self)


class RoundRobin(RedisProvider):
    def get_dependency(self, worker_ctx):
        return RoundRobinTickets(self.keys)
