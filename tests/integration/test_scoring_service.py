"""Scoring consumes lead_captured from the real broker, stores scores, and emits lead_scored and,
for MQLs, lead_qualified — exactly once per event however often the event is delivered."""
import uuid

from grpc import StatusCode
from leadflow.scoring.v1 import scoring_pb2, scoring_pb2_grpc

from services.common.store import PROCESSED_EVENTS
from services.scoring.models import LeadScoreDocument
from services.scoring.service import ScoringService
from tests.support import new_event, wait_until


def captured_event(**lead_fields) -> dict:
    lead = {"lead_id": str(uuid.uuid4()), "email": "cto@acme-robotics.com", "company_domain": "acme-robotics.com",
            "title": "CTO", "company_size": 900, "industry": "manufacturing", "source": "demo_request",
            "phone_e164": "", "captured_at": "2026-11-29T10:00:00.000Z", **lead_fields}
    return new_event("lead_captured", {"lead_id": lead["lead_id"]}, lead=lead)


def test_captured_lead_is_scored_explained_and_qualified(run_service, tokens, tap, publish):
    service = run_service(ScoringService)
    emitted = tap("scoring")
    event = publish("capture", captured_event())

    events = emitted.collect(2)

    assert sorted(e["event_type"] for e in events) == ["lead_qualified", "lead_scored"]
    qualified = emitted.of_type("lead_qualified")[0]
    assert qualified["lead_id"] == event["lead_id"] and qualified["lead"]["title"] == "CTO"
    assert qualified["trace_id"] == event["trace_id"]
    scoring = service.grpc(scoring_pb2_grpc.ScoringServiceStub, tokens["manager"])
    score = scoring.GetLeadScore(scoring_pb2.GetLeadScoreRequest(lead_id=event["lead_id"])).score
    assert score.qualified and score.total == 95 and score.model_version == "builtin"
    assert {r.rule_id for r in score.reasons} == {
        "fit.decision_maker_title", "fit.company_size_500_plus", "fit.target_industry", "fit.business_email",
        "intent.high_intent_source"}


def test_low_scoring_lead_is_scored_but_not_qualified(run_service, tap, publish):
    run_service(ScoringService)
    emitted = tap("scoring")
    event = publish("capture", captured_event(title="Student", company_size=0, company_domain="", industry="",
                                              source="google", email="someone@student.example.edu"))

    emitted.collect(1)
    assert [e["event_type"] for e in emitted.settle()] == ["lead_scored"]
    assert LeadScoreDocument.objects(id=event["lead_id"]).first().total == 0


def test_redelivered_event_changes_nothing_the_second_time(run_service, tap, publish, infra):
    run_service(ScoringService)
    emitted = tap("scoring")
    event = captured_event()

    publish("capture", event)
    emitted.collect(2)
    stored = LeadScoreDocument.objects(id=event["lead_id"]).first()
    publish("capture", event)  # the broker redelivers: same event id
    publish("capture", event)

    assert len(emitted.settle(1.0)) == 2  # still one lead_scored and one lead_qualified
    again = LeadScoreDocument.objects(id=event["lead_id"]).first()
    assert again.scored_at == stored.scored_at
    processed = LeadScoreDocument._get_db()[PROCESSED_EVENTS]
    assert processed.count_documents({"_id": f"handle_lead_captured:{event['event_id']}"}) == 1


def test_unknown_lead_score_is_not_found(run_service, tokens):
    service = run_service(ScoringService)
    scoring = service.grpc(scoring_pb2_grpc.ScoringServiceStub, tokens["admin"])
    error = scoring.error("GetLeadScore", scoring_pb2.GetLeadScoreRequest(lead_id="no-such-lead"))
    assert error.code == StatusCode.NOT_FOUND


def test_a_poison_event_is_dead_lettered_and_does_not_block_the_queue(run_service, tap, publish, infra):
    from services.cli import dead_letters

    run_service(ScoringService, EVENT_MAX_ATTEMPTS=2)
    emitted = tap("scoring")
    poison = new_event("lead_captured", {"lead_id": str(uuid.uuid4())}, unexpected="no lead snapshot")
    publish("capture", poison)
    good = publish("capture", captured_event())

    emitted.collect(2)
    assert {e["lead_id"] for e in emitted.received} == {good["lead_id"]}
    letters = wait_until(lambda: dead_letters.peek(infra.amqp_uri), timeout=10)
    [letter] = [letter for letter in letters if poison["event_id"] in letter["body"]]
    assert letter["handler"] == "scoring.handle_lead_captured"
    assert "KeyError" in letter["error"] and letter["attempts"] == 2
    assert LeadScoreDocument.objects(id=poison["lead_id"]).count() == 0


def test_replayed_dead_letters_go_back_through_their_original_queue(run_service, publish, infra):
    from services.cli import dead_letters

    run_service(ScoringService, EVENT_MAX_ATTEMPTS=2)
    poison = publish("capture", new_event("lead_captured", {"lead_id": str(uuid.uuid4())}, unexpected=True))

    def letters_for_poison():
        return [letter for letter in dead_letters.peek(infra.amqp_uri) if poison["event_id"] in letter["body"]]
    assert wait_until(letters_for_poison)
    replayed = dead_letters.replay(infra.amqp_uri)

    assert replayed >= 1
    # The handler sees it again (two more attempts) and, still failing, dead-letters it once more.
    [again] = wait_until(letters_for_poison)
    assert again["queue"] == "evt-capture-lead_captured--scoring.handle_lead_captured" and again["attempts"] == 2


def test_a_batch_holding_a_poison_event_applies_the_rest_and_dead_letters_only_that_event(
        run_service, tap, publish, infra):
    """Forty events wait in the queue before the service starts, so they reach it as batches; one of
    them cannot be handled. The batch it is in fails, runs again event by event, and the other
    events are scored exactly once; the poison alone goes to the dead letters."""
    from services.cli import dead_letters
    from services.common import metrics

    run_service(ScoringService).container.stop()  # its queues exist: what is published now waits there
    good = [captured_event() for _ in range(40)]
    poison = new_event("lead_captured", {"lead_id": str(uuid.uuid4())}, unexpected="no lead snapshot")
    for event in good[:20] + [poison] + good[20:]:
        publish("capture", event)
    split = metrics.EVENT_BATCHES_SPLIT.labels("scoring", "handle_lead_captured")
    splits_before = split._value.get()
    emitted = tap("scoring", "lead_scored")

    run_service(ScoringService, EVENT_MAX_ATTEMPTS=2, EVENT_BATCH_CONCURRENCY=1)

    wanted = {event["lead_id"] for event in good}
    assert wait_until(lambda: wanted <= {e["lead_id"] for e in emitted.collect(len(wanted), timeout=1)}, timeout=30)
    letters = wait_until(lambda: [letter for letter in dead_letters.peek(infra.amqp_uri)
                                  if poison["event_id"] in letter["body"]], timeout=20)
    assert len(letters) == 1 and letters[0]["attempts"] == 2
    assert split._value.get() > splits_before  # the poison was in a batch, and only it was refused
    scored = [e["lead_id"] for e in emitted.settle(1.0) if e["lead_id"] in wanted]
    assert sorted(scored) == sorted(wanted)  # each once: nothing of the failed batch applied twice
    assert LeadScoreDocument.objects(id__in=list(wanted)).count() == 40
    assert LeadScoreDocument.objects(id=poison["lead_id"]).count() == 0


def test_a_redelivered_batch_changes_nothing(run_service, tap, publish):
    """The same thirty events delivered again (a crash after the commit, before the acks) are
    recognised as handled, all of them, in one batch or several."""
    run_service(ScoringService).container.stop()
    events = [captured_event() for _ in range(30)]
    for event in events:
        publish("capture", event)
    emitted = tap("scoring", "lead_scored")
    run_service(ScoringService)
    wanted = {event["lead_id"] for event in events}
    assert wait_until(lambda: wanted <= {e["lead_id"] for e in emitted.collect(len(wanted), timeout=1)}, timeout=30)

    for event in events:
        publish("capture", event)
    again = emitted.settle(1.5)

    assert sorted(e["lead_id"] for e in again if e["lead_id"] in wanted) == sorted(wanted)
    processed = LeadScoreDocument._get_db()[PROCESSED_EVENTS]
    assert processed.count_documents({"_id": {"$in": [f"handle_lead_captured:{e['event_id']}" for e in events]}}) == 30
