"""Crash safety: kill -9 the scoring service while 500 leads flow, restart it, and every lead is
still scored and assigned exactly once — none lost, none twice."""
import threading
from collections import defaultdict

from tests.e2e.conftest import new_batch, qualifying_lead, submit_all
from tests.support import EventTap, wait_until

LEADS = 500


def test_killing_scoring_mid_flow_loses_and_doubles_nothing(platform, reps):
    scored = EventTap(platform.infra.amqp_uri, "scoring", ("lead_scored",))
    assigned = EventTap(platform.infra.amqp_uri, "routing", ("lead_assigned",))
    batch = new_batch()
    client = platform.client("integration")
    lead_ids = []
    submitter = threading.Thread(
        target=lambda: lead_ids.extend(submit_all(client, [qualifying_lead(i, batch) for i in range(LEADS)], 8)))
    submitter.start()

    # Kill scoring while it is busy: some leads scored, most still to come.
    assert scored.collect(60, timeout=60)
    [scoring] = platform.platform.of("scoring")
    scoring.kill9()
    killed_after = len(scored.received)
    submitter.join(timeout=120)
    assert len(lead_ids) == LEADS  # capture kept accepting while scoring was down
    scoring.start()
    platform.platform.wait_ready(processes=[scoring])

    assert wait_until(lambda: len(_distinct(assigned.collect(LEADS, timeout=1))) >= LEADS, timeout=120)
    scored.settle(2.0)
    assigned.settle(2.0)

    scored_ids, assigned_ids = _event_ids_by_lead(scored.received), _event_ids_by_lead(assigned.received)
    batch_leads = set(lead_ids)
    assert batch_leads <= set(scored_ids) and batch_leads <= set(assigned_ids)
    assert [lead for lead in batch_leads if len(scored_ids[lead]) != 1] == []
    assert [lead for lead in batch_leads if len(assigned_ids[lead]) != 1] == []
    assert platform.db("scoring")["lead_scores"].count_documents({"_id": {"$in": lead_ids}}) == LEADS
    assert platform.db("routing")["tasks"].count_documents({"lead_id": {"$in": lead_ids}}) == LEADS
    assert 0 < killed_after < LEADS
    for tap in (scored, assigned):
        tap.close()
    client.close()


def _distinct(events) -> set:
    return {e["lead_id"] for e in events}


def _event_ids_by_lead(events) -> dict:
    ids = defaultdict(set)
    for event in events:
        ids[event["lead_id"]].add(event["event_id"])
    return ids
