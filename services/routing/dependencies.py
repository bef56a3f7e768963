"""Routing's storage (Mongo), its shared fast state (Redis) and its clock.

A decision is made under one Redis lock shared by every replica: read the open-lead counts and the
rotation counters, decide (pure), reserve the lead in the chosen rep's open set and save the
rotation, release. The assignment is then written to Mongo in a transaction guarded by the lead's
``owner_version``; a replica that lost the race gives its reservation back. So capacity holds and
turns stay fair however many replicas route at once, and a lead is never assigned twice.
"""
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import timedelta

from nameko import config
from nameko.extensions import DependencyProvider

from services.common.errors import FailedPrecondition, NotFound
from services.common.events import parse_iso, utcnow
from services.common.redis_store import connect_redis
from services.common.store import one_by_one, Store, get_or_not_found
from services.routing import decision as decisions
from services.routing import domain, events
from services.routing.domain import Considered
from services.routing.mappers import (assignment_from_document, considered_to_dicts, history_to_dict,
                                      rep_from_document, rep_to_document, task_from_document, task_to_document,
                                      team_from_document, team_to_document)
from services.routing.models import (AssignmentDocument, RepDocument, RoutingPolicyDocument, TaskDocument,
                                     TeamDocument)
from services.routing.policy import BUILTIN_VERSION, RoutingPolicy, builtin_definition, compile_policy

log = logging.getLogger(__name__)

FIRST_RESPONSE = "first_response"
POLICY_PREFIX = "routing-policy@"
LIVE_CHECK_SECONDS = 1.0  # a stored policy or rep change reaches every replica within this
LOCK_SECONDS = 10
QUEUE_RETRY = timedelta(seconds=60)  # a queued lead is tried again this often (reps come into hours)
TICK_BATCH = 200
EXISTS, STALE = "exists", "stale"
IN_FLIGHT_SECONDS = 120  # a reservation younger than this may belong to an assignment still being written
DECISION_MEMO_SECONDS = 3600  # longer than any redelivery of the event that asked for the decision


class Clock(DependencyProvider):
    """Routing's clock. Deadlines, warnings and escalations all read it, so a test can move time
    forward (``advance``) and watch an SLA breach happen in a second instead of two hours."""

    def setup(self):
        self.offset = timedelta(0)

    def advance(self, delta: timedelta) -> None:
        self.offset += delta

    def now(self):
        return utcnow() + self.offset

    def get_dependency(self, worker_ctx):
        return self


class SharedState:
    """What every replica must agree on, in Redis: the decision lock, each rep's open leads (a set of
    lead ids, so counting the same lead twice is impossible) and each pool's rotation counters."""

    def __init__(self, keys):
        self.keys = keys
        self.client = keys.client

    def lock(self):
        return self.client.lock(self.keys.key("decide"), timeout=LOCK_SECONDS, blocking_timeout=LOCK_SECONDS)

    def _open_key(self, rep_id: str) -> str:
        return self.keys.key("open", rep_id)

    def open_counts(self, rep_ids) -> dict:
        pipe = self.client.pipeline(transaction=False)
        for rep_id in rep_ids:
            pipe.scard(self._open_key(rep_id))
        return dict(zip(rep_ids, pipe.execute(), strict=True))

    def open_ready(self) -> bool:
        return bool(self.client.exists(self.keys.key("open-ready")))

    def rebuild_open(self, by_rep: dict, rep_ids) -> None:
        """Replace the open sets with the store's open assignments (``by_rep``), keeping reservations
        made in the last IN_FLIGHT_SECONDS: their assignment may not be committed yet, and dropping
        them would let another decision fill the same capacity twice."""
        reps = sorted(set(rep_ids) | set(by_rep))
        reserved_at = self.client.hgetall(self.keys.key("reserved-at"))
        horizon = time.time() - IN_FLIGHT_SECONDS
        read = self.client.pipeline(transaction=False)
        for rep_id in reps:
            read.smembers(self._open_key(rep_id))
        now_open = dict(zip(reps, read.execute(), strict=True))
        pipe = self.client.pipeline(transaction=True)
        for rep_id in reps:
            in_flight = {lead for lead in now_open[rep_id] if float(reserved_at.get(lead, 0)) > horizon}
            members = set(by_rep.get(rep_id, ())) | in_flight
            pipe.delete(self._open_key(rep_id))
            if members:
                pipe.sadd(self._open_key(rep_id), *members)
        stale = [lead for lead, at in reserved_at.items() if float(at) <= horizon]
        if stale:
            pipe.hdel(self.keys.key("reserved-at"), *stale)
        pipe.set(self.keys.key("open-ready"), "1")
        pipe.execute()

    def forget_open_counts(self) -> None:
        """The next decision recounts open leads from the store (drift from crashes disappears)."""
        self.client.delete(self.keys.key("open-ready"))

    def add_open(self, rep_id: str, lead_id: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(self._open_key(rep_id), lead_id)
        pipe.hset(self.keys.key("reserved-at"), lead_id, time.time())
        pipe.execute()

    def remove_open(self, rep_id: str, lead_id: str) -> None:
        if rep_id:
            self.client.srem(self._open_key(rep_id), lead_id)

    def decided(self, memo: str):
        raw = self.client.get(self.keys.key("decided", memo))
        if raw is None:
            return None
        fields = json.loads(raw)
        fields["considered"] = tuple(Considered(*c) for c in fields["considered"])
        return decisions.Decision(**{**fields, "rotation": {}})

    def remember_decision(self, memo: str, decision) -> None:
        fields = {**asdict(decision), "rotation": {},
                  "considered": [[c.rep_id, c.skipped, c.rule_id] for c in decision.considered]}
        self.client.set(self.keys.key("decided", memo), json.dumps(fields), ex=DECISION_MEMO_SECONDS)

    def decided_many(self, memos: list[str]) -> dict:
        """``decided`` for many memos in one round trip: {memo: Decision} of those remembered."""
        if not memos:
            return {}
        found = {}
        for memo, raw in zip(memos, self.client.mget([self.keys.key("decided", m) for m in memos]), strict=True):
            if raw is not None:
                fields = json.loads(raw)
                fields["considered"] = tuple(Considered(*c) for c in fields["considered"])
                found[memo] = decisions.Decision(**{**fields, "rotation": {}})
        return found

    def reserve_many(self, reserved: list[tuple[str, str]], rotations: dict, remembered: dict) -> None:
        """What a batch of decisions changed, in one round trip: each (rep, lead) reserved in the
        rep's open set, each pool's rotation counters, each decision remembered under its memo."""
        pipe = self.client.pipeline(transaction=True)
        now = time.time()
        for rep_id, lead_id in reserved:
            pipe.sadd(self._open_key(rep_id), lead_id)
            pipe.hset(self.keys.key("reserved-at"), lead_id, now)
        for pool, currents in rotations.items():
            if currents:
                pipe.hset(self.keys.key("rotation"),
                          mapping={f"{pool}|{rep_id}": value for rep_id, value in currents.items()})
        for memo, decision in remembered.items():
            fields = {**asdict(decision), "rotation": {},
                      "considered": [[c.rep_id, c.skipped, c.rule_id] for c in decision.considered]}
            pipe.set(self.keys.key("decided", memo), json.dumps(fields), ex=DECISION_MEMO_SECONDS)
        pipe.execute()

    def rotations(self) -> dict:
        result = {}
        for name, value in self.client.hgetall(self.keys.key("rotation")).items():
            pool, _, rep_id = name.rpartition("|")
            result.setdefault(pool, {})[rep_id] = int(value)
        return result

    def save_rotation(self, pool: str, currents: dict) -> None:
        if currents:
            self.client.hset(self.keys.key("rotation"),
                             mapping={f"{pool}|{rep_id}": value for rep_id, value in currents.items()})


@dataclass
class _Live:
    """This process's copy of the live policy and the reps, re-read when they may have changed."""

    policy: RoutingPolicy | None = None
    policy_number: int = -1
    policy_checked: float = 0.0
    reps: dict | None = None
    reps_read: float = 0.0
    teams: dict | None = None
    recounted: float = 0.0


class RoutingRepository:
    def __init__(self, store: "Routing", state: SharedState):
        self.store = store
        self.live = store.live
        self.state = state

    # ---- reps and teams ---------------------------------------------------------------------------

    def put_rep(self, rep) -> None:
        rep_to_document(rep, utcnow()).save()
        self.live.reps = None

    def get_rep(self, rep_id: str):
        return rep_from_document(get_or_not_found(RepDocument, rep_id, "rep"))

    def set_availability(self, rep_id: str, status, away_from, away_until, away_note: str):
        document = get_or_not_found(RepDocument, rep_id, "rep")
        document.update(set__status=status.value, set__away_from=away_from, set__away_until=away_until,
                        set__away_note=away_note, set__updated_at=utcnow())
        self.live.reps = None
        return self.get_rep(rep_id)

    def list_reps(self, team: str, offset: int, limit: int):
        query = RepDocument.objects(team=team) if team else RepDocument.objects()
        return [rep_from_document(d) for d in query.order_by("id").skip(offset).limit(limit)]

    def reps(self) -> dict:
        if self.live.reps is None or time.monotonic() - self.live.reps_read > LIVE_CHECK_SECONDS:
            self.live.reps = {d.id: rep_from_document(d) for d in RepDocument.objects()}
            self.live.teams = {d.id: team_from_document(d) for d in TeamDocument.objects()}
            self.live.reps_read = time.monotonic()
        return self.live.reps

    def teams(self) -> dict:
        self.reps()
        return self.live.teams

    def put_team(self, team) -> None:
        team_to_document(team, utcnow()).save()
        self.live.reps = None

    def get_team(self, team_id: str):
        return team_from_document(get_or_not_found(TeamDocument, team_id, "team"))

    def list_teams(self, offset: int, limit: int):
        return [team_from_document(d) for d in TeamDocument.objects.order_by("id").skip(offset).limit(limit)]

    def recount_open_leads_every(self, seconds: float) -> None:
        """Open-lead counts live in Redis; now and then they are recounted from the store, so a
        reservation left by a crash between deciding and writing does not hold a rep's capacity."""
        if time.monotonic() - self.live.recounted > seconds:
            self.live.recounted = time.monotonic()
            self.state.forget_open_counts()

    def open_leads(self, rep_ids) -> dict:
        if not self.state.open_ready():
            with self.state.lock():
                self._ensure_open_counts(rep_ids)
        return self.state.open_counts(list(rep_ids))

    # ---- policy ------------------------------------------------------------------------------------

    def policy(self) -> RoutingPolicy:
        if self.live.policy is None or time.monotonic() - self.live.policy_checked > LIVE_CHECK_SECONDS:
            latest = RoutingPolicyDocument.objects.order_by("-id").only("id").first()
            number = latest.id if latest else 0
            if number != self.live.policy_number:
                if latest is None:
                    definition = builtin_definition(int(config.get("SLA_FIRST_RESPONSE_MINUTES", 120)))
                    self.live.policy = compile_policy(definition, BUILTIN_VERSION)
                else:
                    document = RoutingPolicyDocument.objects.get(id=number)
                    self.live.policy = compile_policy(document.definition, f"{POLICY_PREFIX}{number}")
                self.live.policy_number = number
            self.live.policy_checked = time.monotonic()
        return self.live.policy

    def put_policy(self, definition: dict, created_by: str) -> RoutingPolicyDocument:
        def work(uow):
            document = RoutingPolicyDocument(id=uow.next_number(RoutingPolicyDocument), definition=definition,
                                             created_at=utcnow(), created_by=created_by)
            uow.insert(document)
            uow.publish(*events.config_changed(f"{POLICY_PREFIX}{document.id}", created_by))
            return document
        document = self.store.run_in_transaction(work)
        self.live.policy_checked = 0.0
        return document

    def policy_document(self, number: int):
        """One stored version; 0 for the live one; None when only the built-in policy exists."""
        if not number:
            return RoutingPolicyDocument.objects.order_by("-id").first()
        document = RoutingPolicyDocument.objects(id=number).first()
        if document is None:
            raise NotFound("routing policy version", str(number))
        return document

    def policy_versions(self, offset: int, limit: int):
        return list(RoutingPolicyDocument.objects.order_by("-id").skip(offset).limit(limit))

    # ---- deciding ------------------------------------------------------------------------------------

    def _ensure_open_counts(self, rep_ids) -> None:
        """Called under the lock. Recount every rep's open leads from the store when Redis has no
        counts (first start, a flushed Redis, or the periodic recount)."""
        if self.state.open_ready():
            return
        by_rep = {}
        for document in AssignmentDocument.objects(open=True, queued=False).only("id", "rep_id"):
            by_rep.setdefault(document.rep_id, []).append(document.id)
        self.state.rebuild_open(by_rep, rep_ids)

    def _sticky_owner(self, key: str, lead_id: str) -> str:
        if not key:
            return ""
        previous = AssignmentDocument.objects(account_key=key, id__ne=lead_id, queued=False) \
            .order_by("-assigned_at").only("rep_id").first()
        return previous.rep_id if previous else ""

    def decide(self, lead: dict, score: dict, now, owner_version: int, excluded=(), manual_rep=None,
               manual_reason=""):
        """Decide under the shared lock and reserve the lead in the chosen rep's open set. A second
        worker deciding the same change of owner (a redelivered event racing the first delivery) gets
        the first one's decision back, so turns advance once per lead, never twice."""
        policy, reps = self.policy(), self.reps()
        sticky = self._sticky_owner(decisions.account_key(lead), lead["lead_id"]) \
            if any(rule.strategy == "sticky" for rule in policy.rules) else ""
        memo = f"{lead['lead_id']}:{owner_version}"
        with self.state.lock():
            self._ensure_open_counts(reps)
            earlier = self.state.decided(memo) if manual_rep is None else None
            if earlier is not None:
                return policy, earlier
            if manual_rep is not None:
                decision = decisions.Decision(manual_rep.rep_id, manual_rep.team, "", "manual", manual_reason, (),
                                              sla_minutes=policy.first_response_minutes)
            else:
                decision = decisions.decide(lead, score, policy, reps, self.state.open_counts(list(reps)),
                                            self.state.rotations(), sticky, now, excluded)
            if decision.rep_id:
                self.state.add_open(decision.rep_id, lead["lead_id"])
                self.state.save_rotation(decision.pool, decision.rotation)
            if decision.rep_id and manual_rep is None:  # a manager's choice or an empty one is never reused
                self.state.remember_decision(memo, decision)
        return policy, decision

    def decide_many(self, wanted: list[tuple[dict, dict]], now) -> dict:
        """First decisions for a batch of new leads ((lead, score) pairs), under one acquisition of the
        shared lock: the reps' open counts and the pools' turns are read once, carried from one decision
        to the next in memory, and written back once, so the batch decides exactly as one decision
        after another would. {lead_id: (policy, Decision)}; a lead decided before (a redelivery racing
        the first delivery) gets that decision back."""
        policy, reps = self.policy(), self.reps()
        sticky_rule = any(rule.strategy == "sticky" for rule in policy.rules)
        wanted = list({lead["lead_id"]: (lead, score) for lead, score in wanted}.values())
        sticky = {lead["lead_id"]: self._sticky_owner(decisions.account_key(lead), lead["lead_id"])
                  for lead, _ in wanted} if sticky_rule else {}
        memos = {lead["lead_id"]: f"{lead['lead_id']}:0" for lead, _ in wanted}
        decided, reserved, remembered, pools = {}, [], {}, set()
        owner_of_account = {}  # leads of one account in this batch go where the first of them went
        with self.state.lock():
            self._ensure_open_counts(reps)
            earlier = self.state.decided_many(list(memos.values()))
            open_counts, rotations = self.state.open_counts(list(reps)), self.state.rotations()
            for lead, score in wanted:
                lead_id, account = lead["lead_id"], decisions.account_key(lead)
                if memos[lead_id] in earlier:
                    decided[lead_id] = (policy, earlier[memos[lead_id]])
                    continue
                decision = decisions.decide(lead, score, policy, reps, open_counts, rotations,
                                            owner_of_account.get(account) or sticky.get(lead_id, ""), now)
                if decision.rep_id:
                    open_counts[decision.rep_id] = open_counts.get(decision.rep_id, 0) + 1
                    rotations[decision.pool] = {**rotations.get(decision.pool, {}), **decision.rotation}
                    pools.add(decision.pool)
                    reserved.append((decision.rep_id, lead_id))
                    remembered[memos[lead_id]] = decision
                    if account and sticky_rule:
                        owner_of_account.setdefault(account, decision.rep_id)
                decided[lead_id] = (policy, decision)
            self.state.reserve_many(reserved, {pool: rotations[pool] for pool in pools}, remembered)
        return decided

    def _give_back(self, decision, lead_id: str) -> None:
        """A decision whose write lost the race: its reservation is released (unless the lead really
        is that rep's, assigned by the winner)."""
        if not decision.rep_id:
            return
        winner = AssignmentDocument.objects(id=lead_id).only("rep_id", "open").first()
        if winner is None or winner.rep_id != decision.rep_id or not winner.open:
            self.state.remove_open(decision.rep_id, lead_id)

    def _new_task(self, lead_id: str, rep, policy, decision, now, hop: int) -> domain.Task:
        warn_at, due_at = decisions.sla_times(now, rep, policy, decision.sla_minutes)
        return domain.Task(task_id=str(uuid.uuid4()), lead_id=lead_id, rep_id=rep.rep_id, kind=FIRST_RESPONSE,
                           due_at=due_at, warn_at=warn_at, status=domain.TaskStatus.OPEN, created_at=now,
                           escalation_hop=hop)

    # ---- first assignment -------------------------------------------------------------------------

    def is_known(self, lead_id: str) -> bool:
        return AssignmentDocument.objects(id=lead_id).only("id").first() is not None

    def assign_new(self, lead: dict, score: dict, now, event=None, handler="", manual_rep=None, by="routing",
                   reason=""):
        """Route a lead routing has not seen: to a rep, or visibly into the fallback queue. Returns
        the Assignment, or None when another worker (or an earlier delivery) got there first."""
        lead_id = lead["lead_id"]
        if self.is_known(lead_id):
            return None
        policy, decision = self.decide(lead, score, now, 0, manual_rep=manual_rep, manual_reason=reason)
        rep = self.reps().get(decision.rep_id) or manual_rep

        def work(uow):
            if uow.find_one(AssignmentDocument, {"_id": lead_id}):
                return EXISTS
            assignment, task = self._assignment(lead, score, policy, decision, rep, now, by)
            uow.insert(self._assignment_document(assignment, lead, score))
            if task is not None:
                uow.insert(task_to_document(task))
                self._announce_new_owner(uow, assignment, lead, task)
            return assignment

        result = self.store.run_once(event, handler, work) if event else self.store.run_in_transaction(work)
        if not isinstance(result, domain.Assignment):
            self._give_back(decision, lead_id)
            return None
        return result

    def assign_new_each(self, events_: list[dict], handler: str, now) -> list:
        """``assign_new`` for a batch of lead_qualified events: the leads routing has not seen are
        decided together (``decide_many``: one lock acquisition) and their assignments, tasks and
        events written in one transaction, once per event. One outcome per event: the Assignment,
        None (the lead was routed before) or DUPLICATE."""
        lead_ids = [event["lead"]["lead_id"] for event in events_]
        known = set(self.store.find_ids(AssignmentDocument, lead_ids))
        decided = self.decide_many([(event["lead"], event.get("score") or {}) for event in events_
                                    if event["lead"]["lead_id"] not in known], now)
        reps = self.reps()

        def work_all(uow, fresh: list) -> list:
            exists = set(uow.find_by_ids(AssignmentDocument, [event["lead"]["lead_id"] for event in fresh]))
            outcomes, assignments, tasks = [], [], []
            for event in fresh:
                lead, score = event["lead"], event.get("score") or {}
                if lead["lead_id"] in exists or lead["lead_id"] not in decided:
                    outcomes.append(None)
                    continue
                exists.add(lead["lead_id"])  # a second event about the lead in this batch finds it routed
                policy, decision = decided[lead["lead_id"]]
                assignment, task = self._assignment(lead, score, policy, decision, reps.get(decision.rep_id), now,
                                                    "routing")
                assignments.append(self._assignment_document(assignment, lead, score))
                if task is not None:
                    tasks.append(task_to_document(task))
                    self._announce_new_owner(uow, assignment, lead, task)
                outcomes.append(assignment)
            uow.insert_many(assignments)
            uow.insert_many(tasks)
            return outcomes

        outcomes = self.store.run_once_each(events_, handler, work_all)
        routed = {o.lead_id for o in outcomes if isinstance(o, domain.Assignment)}
        for lead_id, (_, decision) in decided.items():
            if lead_id not in routed:
                self._give_back(decision, lead_id)
        return outcomes

    def _assignment(self, lead, score, policy, decision, rep, now, by):
        task = self._new_task(lead["lead_id"], rep, policy, decision, now, 0) if decision.rep_id else None
        kind = "assigned" if decision.rep_id else "queued"
        entry = domain.HistoryEntry(kind, decision.rep_id, now, by, decision.reason, decision.rule_id,
                                    policy.version)
        captured_at = lead.get("captured_at")
        assignment = domain.Assignment(
            lead_id=lead["lead_id"], rep_id=decision.rep_id, team=decision.team, strategy=decision.strategy,
            policy_version=policy.version, reason=decision.reason, rule_id=decision.rule_id,
            candidates=list(decision.considered), lead_captured_at=parse_iso(captured_at) if captured_at else None,
            assigned_at=now if decision.rep_id else None, task=task, history=[entry],
            owner_version=1 if decision.rep_id else 0, account_key=decisions.account_key(lead))
        return assignment, task

    def _assignment_document(self, assignment, lead, score) -> AssignmentDocument:
        return AssignmentDocument(
            id=assignment.lead_id, rep_id=assignment.rep_id, team=assignment.team, strategy=assignment.strategy,
            policy_version=assignment.policy_version, rule_id=assignment.rule_id, reason=assignment.reason,
            considered=considered_to_dicts(assignment.candidates),
            history=[history_to_dict(h) for h in assignment.history], lead=lead, score=score,
            account_key=assignment.account_key, lead_captured_at=assignment.lead_captured_at,
            assigned_at=assignment.assigned_at, task_id=assignment.task.task_id if assignment.task else "",
            owner_version=assignment.owner_version, open=not assignment.queued, queued=assignment.queued,
            queued_at=None if assignment.rep_id else assignment.history[-1].at,
            retry_queued=assignment.queued, retry_at=assignment.history[-1].at if assignment.queued else None,
            first_touch_at=assignment.first_touch_at)

    def _announce_new_owner(self, uow, assignment, lead, task) -> None:
        uow.publish(*events.lead_assigned(assignment, lead))
        uow.publish(*events.task_created(task))
        rep = self.reps().get(assignment.rep_id)
        team = self.teams().get(assignment.team)
        uow.publish(*events.notification_requested(
            "lead_assigned", assignment.lead_id, [_recipient(rep, assignment.rep_id)],
            f"New lead {_lead_name(lead)} for you; first response due {task.due_at:%Y-%m-%d %H:%M} UTC",
            team=assignment.team, webhook_url=team.webhook_url if team else "", task_id=task.task_id))

    # ---- changes of owner ---------------------------------------------------------------------------

    def change_owner(self, lead_id: str, now, kind: str, by: str, reason: str, target_rep=None,
                     expected_version: int | None = None, expected_task: str | None = None, hop: int = 0,
                     keep_in_queue_retry: bool = False):
        """Move a lead to another rep, chosen by the policy among reps who have not had it (or to
        ``target_rep``), or into the fallback queue when none can take it. Guarded by the lead's
        ``owner_version`` (and, for escalations, its current task), so two replicas escalating the
        same breach move it once. Returns the Assignment, or None when someone else moved it first."""
        document = AssignmentDocument.objects(id=lead_id).first()
        if document is None:
            raise NotFound("assignment for lead", lead_id)
        version = document.owner_version if expected_version is None else expected_version
        previous = [h.get("rep_id") for h in document.history or [] if h.get("rep_id")]
        lead, score = dict(document.lead or {"lead_id": lead_id}), dict(document.score or {})
        lead.setdefault("lead_id", lead_id)
        if kind == "queued":
            policy, decision = self.policy(), decisions.Decision("", "", "", "", reason, ())
        else:
            policy, decision = self.decide(lead, score, now, version, excluded=set(previous) | {document.rep_id},
                                           manual_rep=target_rep, manual_reason=reason)
        rep = target_rep or self.reps().get(decision.rep_id)
        if not decision.rep_id and document.queued:
            # Still nobody: the lead stays queued as it was; only its next try moves.
            AssignmentDocument.objects(id=lead_id, owner_version=version).update(set__retry_at=now + QUEUE_RETRY)
            return None

        def work(uow):
            current = uow.find_one(AssignmentDocument, {"_id": lead_id})
            if current is None or current.owner_version != version or \
                    (expected_task is not None and current.task_id != expected_task):
                return STALE
            if current.task_id:
                uow.update_one(TaskDocument, {"_id": current.task_id, "status": "open"},
                               {"$set": {"status": "reassigned", "next_check_at": None}})
            old_rep = current.rep_id
            task = self._new_task(lead_id, rep, policy, decision, now, hop) if decision.rep_id else None
            entry_kind = kind if decision.rep_id else "queued"
            why = reason if target_rep is not None or decision.reason == reason else f"{reason}; {decision.reason}"
            entry = domain.HistoryEntry(entry_kind, decision.rep_id, now, by, why, decision.rule_id, policy.version)
            current.rep_id, current.team = decision.rep_id, decision.team if decision.rep_id else current.team
            current.strategy, current.rule_id, current.reason = decision.strategy, decision.rule_id, why
            current.policy_version = policy.version
            if decision.considered:
                current.considered = considered_to_dicts(decision.considered)
            current.history = list(current.history or []) + [history_to_dict(entry)]
            current.owner_version = version + 1
            current.task_id = task.task_id if task else ""
            current.open = bool(decision.rep_id)
            current.queued = not decision.rep_id
            current.queued_at = now if current.queued else None
            current.retry_queued = current.queued and keep_in_queue_retry
            current.retry_at = now + QUEUE_RETRY if current.retry_queued else None
            if decision.rep_id:
                current.assigned_at = now
            uow.replace(current)
            assignment = assignment_from_document(current, task)
            if task is not None:
                uow.insert(task_to_document(task))
                uow.publish(*events.task_created(task))
            if task is not None and version == 0:
                uow.publish(*events.lead_assigned(assignment, lead))  # its first owner, out of the queue
            else:
                uow.publish(*events.lead_reassigned(assignment, old_rep, entry))
            self._notify_change(uow, assignment, old_rep, entry, lead, task)
            uow.after_commit(lambda: self.state.remove_open(old_rep, lead_id))
            return assignment

        result = self.store.run_in_transaction(work)
        if not isinstance(result, domain.Assignment):
            self._give_back(decision, lead_id)
            return None
        return result

    def _notify_change(self, uow, assignment, old_rep: str, entry, lead, task) -> None:
        reps, teams = self.reps(), self.teams()
        team = teams.get(assignment.team)
        recipients = []
        if assignment.rep_id:
            recipients.append(_recipient(reps.get(assignment.rep_id), assignment.rep_id))
        if old_rep:
            recipients.append(_recipient(reps.get(old_rep), old_rep))
        if entry.kind in ("escalated", "queued") and team:
            recipients.extend(_recipient(reps.get(m), m) for m in team.managers)
        if not recipients:
            return
        target = assignment.rep_id or "the fallback queue"
        uow.publish(*events.notification_requested(
            f"lead_{entry.kind}", assignment.lead_id, recipients,
            f"Lead {_lead_name(lead)} moved from {old_rep or 'the fallback queue'} to {target}: {entry.reason}",
            team=assignment.team, webhook_url=team.webhook_url if team else "",
            task_id=task.task_id if task else ""))

    def retry_queued(self, now, limit: int = TICK_BATCH) -> list:
        """Queued leads that a rep may take now (someone came back, into working hours, or the policy
        changed), oldest first. Each is tried again at most every QUEUE_RETRY."""
        moved = []
        for document in AssignmentDocument.objects(retry_queued=True, retry_at__lte=now).order_by("retry_at") \
                .only("id", "owner_version").limit(limit):
            assignment = self.change_owner(document.id, now, "assigned", "routing",
                                           "taken from the fallback queue", expected_version=document.owner_version,
                                           keep_in_queue_retry=True)
            if assignment is not None and not assignment.queued:
                moved.append(assignment)
        return moved

    def retry_queue_now(self, now) -> None:
        """Reps, teams or the policy changed: every retryable queued lead is tried on the next tick."""
        AssignmentDocument.objects(retry_queued=True, retry_at__gt=now).update(set__retry_at=now)

    def queue_size(self) -> int:
        return AssignmentDocument.objects(queued=True).count()

    def fallback_queue(self, offset: int, limit: int) -> list:
        documents = AssignmentDocument.objects(queued=True).order_by("queued_at").skip(offset).limit(limit)
        return [assignment_from_document(d, None) for d in documents]

    # ---- the SLA clock ------------------------------------------------------------------------------

    def tasks_to_check(self, now, limit: int = TICK_BATCH) -> list:
        return [task_from_document(d) for d in
                TaskDocument.objects(status="open", next_check_at__lte=now).order_by("next_check_at").limit(limit)]

    def warn(self, task, now):
        """Mark the warning sent (once, whichever replica is first) and announce it."""
        def work(uow):
            result = uow.update_one(TaskDocument, {"_id": task.task_id, "status": "open", "warned_at": None},
                                    {"$set": {"warned_at": now, "next_check_at": task.due_at}})
            if result.modified_count != 1:
                return None
            warned = replace(task, warned_at=now)
            uow.publish(*events.sla_warning(warned))
            rep = self.reps().get(task.rep_id)
            uow.publish(*events.notification_requested(
                "sla_warning", task.lead_id, [_recipient(rep, task.rep_id)],
                f"First response to lead {task.lead_id} due at {task.due_at:%Y-%m-%d %H:%M} UTC", task_id=task.task_id))
            return warned
        return self.store.run_in_transaction(work)

    def breach(self, task, now, escalation: str):
        def work(uow):
            result = uow.update_one(TaskDocument, {"_id": task.task_id, "status": "open", "breached_at": None},
                                    {"$set": {"breached_at": now, "next_check_at": now}})
            if result.modified_count != 1:
                return None
            breached = replace(task, breached_at=now)
            uow.publish(*events.sla_breached(breached, escalation))
            return breached
        return self.store.run_in_transaction(work)

    def notify_managers(self, task, now, assignment):
        """Escalation by telling the team's managers; the rep keeps the lead."""
        team = self.teams().get(assignment.team)
        reps = self.reps()

        def work(uow):
            result = uow.update_one(TaskDocument, {"_id": task.task_id, "status": "open", "escalated_at": None},
                                    {"$set": {"escalated_at": now, "next_check_at": None}})
            if result.modified_count != 1:
                return False
            managers = [_recipient(reps.get(m), m) for m in (team.managers if team else [])]
            uow.publish(*events.notification_requested(
                "sla_escalated", task.lead_id, managers,
                f"{task.rep_id} missed the first-response deadline ({task.due_at:%Y-%m-%d %H:%M} UTC) for lead "
                f"{task.lead_id}", team=assignment.team, webhook_url=team.webhook_url if team else "",
                task_id=task.task_id))
            return True
        return self.store.run_in_transaction(work)

    def stop_checking(self, task_id: str) -> None:
        TaskDocument.objects(id=task_id).update(set__next_check_at=None)

    def complete_task(self, task_id: str, by: str, at, event=None, handler=""):
        """Close a task; the first touch of a lead is recorded on its assignment. Returns the task,
        or raises FailedPrecondition for a task that was reassigned away."""
        def work(uow):
            document = uow.find_one(TaskDocument, {"_id": task_id})
            if document is None:
                raise NotFound("task", task_id)
            if document.status == "completed":
                return task_from_document(document), None
            if document.status == "reassigned":
                raise FailedPrecondition(f"task {task_id} was reassigned away from {document.rep_id}")
            uow.update_one(TaskDocument, {"_id": task_id, "status": "open"}, {"$set": {
                "status": "completed", "completed_at": at, "completed_by": by, "next_check_at": None}})
            task = replace(task_from_document(document), status=domain.TaskStatus.COMPLETED, completed_at=at,
                           completed_by=by)
            touched = uow.update_one(AssignmentDocument, {"_id": task.lead_id, "first_touch_at": None},
                                     {"$set": {"first_touch_at": at}}).modified_count == 1
            assignment = uow.find_one(AssignmentDocument, {"_id": task.lead_id})
            first_assigned = assignment.history[0].get("at") if assignment and assignment.history else None
            uow.publish(*events.task_completed(task, first_assigned, touched))
            return task, (at - first_assigned).total_seconds() if touched and first_assigned else None
        if event is not None:
            return self.store.run_once(event, handler, work)
        return self.store.run_in_transaction(work)

    def first_contact(self, event: dict, handler: str, contacted_at):
        """Opportunity saw the first call, email or meeting: the open first-response task is done."""
        task = TaskDocument.objects(lead_id=event["lead_id"], status="open", kind=FIRST_RESPONSE).only("id").first()
        if task is None:
            return None
        return self.complete_task(task.id, "lead_contacted", contacted_at, event, handler)

    def release(self, events_: list[dict], handler: str) -> list:
        """The events' leads left the rep's desk (converted, disqualified or recycled by sales): they no
        longer count toward their rep's capacity. A batch of events in one transaction."""
        def work(uow, event):
            lead_id = event["lead_id"]
            document = uow.find_one(AssignmentDocument, {"_id": lead_id})
            if document is None or not document.open:
                return False
            uow.update_one(AssignmentDocument, {"_id": lead_id}, {"$set": {"open": False}})
            uow.after_commit(lambda: self.state.remove_open(document.rep_id, lead_id))
            return True
        return self.store.run_once_each(events_, handler, one_by_one(work))

    # ---- reading -----------------------------------------------------------------------------------

    def get_assignment(self, lead_id: str):
        document = get_or_not_found(AssignmentDocument, lead_id, "assignment for lead")
        task = TaskDocument.objects(id=document.task_id).first() if document.task_id else None
        return assignment_from_document(document, task_from_document(task) if task else None)

    def get_task(self, task_id: str):
        return task_from_document(get_or_not_found(TaskDocument, task_id, "task"))

    def list_tasks(self, rep_id: str, status, due_before, lead_id: str, offset: int, limit: int):
        query = {}
        if rep_id:
            query["rep_id"] = rep_id
        if status:
            query["status"] = status.value
        if due_before:
            query["due_at__lt"] = due_before
        if lead_id:
            query["lead_id"] = lead_id
        return [task_from_document(d) for d in
                TaskDocument.objects(**query).order_by("due_at", "id").skip(offset).limit(limit)]


def _recipient(rep, rep_id: str) -> dict:
    return {"rep_id": rep_id, "email": rep.email if rep else "", "name": rep.name if rep else ""}


def _lead_name(lead: dict) -> str:
    name = " ".join(p for p in (lead.get("first_name"), lead.get("last_name")) if p)
    company = lead.get("company") or ""
    label = f"{name} ({company})" if name and company else name or company or lead.get("lead_id", "")
    return label


class Routing(Store):
    """Routing's store and its shared Redis state, injected together as the repository (a decision
    needs both)."""

    documents = (RepDocument, TeamDocument, RoutingPolicyDocument, TaskDocument, AssignmentDocument)

    def setup(self):
        super().setup()
        self.live = _Live()
        self.keys = connect_redis(self.container.service_name)
        self._queue_leads_waiting_from_before()

    def _queue_leads_waiting_from_before(self) -> None:
        """Before routing had a fallback queue, a lead no rep could take waited in ``pending_leads``.
        Each becomes a queued assignment (tried again like any other), so none is lost by an upgrade."""
        pending = self.db["pending_leads"]
        for waiting in pending.find():
            lead = {**waiting.get("lead", {}), "lead_id": waiting["_id"]}
            at = waiting.get("qualified_at") or utcnow()
            entry = {"kind": "queued", "rep_id": "", "at": at, "by": "routing", "rule_id": "",
                     "reason": "fallback queue: waited for an active rep", "policy_version": BUILTIN_VERSION}
            self.db[AssignmentDocument._get_collection_name()].update_one({"_id": waiting["_id"]}, {"$setOnInsert": {
                "rep_id": "", "team": "", "strategy": "", "policy_version": BUILTIN_VERSION, "rule_id": "",
                "reason": entry["reason"], "considered": [], "history": [entry], "lead": lead, "score": {},
                "account_key": decisions.account_key(lead), "task_id": "", "owner_version": 0, "open": False,
                "queued": True, "queued_at": at, "retry_queued": True, "retry_at": at}}, upsert=True)
            pending.delete_one({"_id": waiting["_id"]})

    def stop(self):
        super().stop()
        self.keys.client.close()

    def check_ready(self) -> None:
        super().check_ready()
        self.keys.client.ping()

    def get_dependency(self, worker_ctx):
        return RoutingRepository(self, SharedState(self.keys))
