"""Where an event stream subscription starts and what it reads: the rules an integrator relies on to
resume without a gap."""
import pytest

from services.common.errors import InvalidArgument, OutOfRange
from services.common.event_catalogue import EVENT_TYPES, missing_keys, undeclared_keys
from services.common.events import make_event
from services.reporting.stream import (GAP_WAIT_SECONDS, LATE_PAGE_SECONDS, StreamBounds, Subscription,
                                      subscription_from)

KEPT = StreamBounds(oldest=101, latest=250)  # positions 1-100 expired


def subscribe(**given):
    values = {"num_requested": 10, "preset": "latest", "replay_position": 0, "event_types": [],
              "subject_type": "", "subject_id": "", **given}
    return subscription_from(**values, bounds=KEPT)


def test_each_preset_starts_where_the_client_expects():
    assert subscribe().after == 250
    assert subscribe(preset="earliest").after == 100
    assert subscribe(preset="custom", replay_position=100).after == 100  # the next one is the oldest kept
    assert subscribe(preset="custom", replay_position=250).after == 250
    assert subscription_from(5, "earliest", 0, [], "", "", StreamBounds(oldest=8, latest=7)).after == 7  # all expired


def test_a_position_out_of_retention_or_ahead_of_the_stream_is_out_of_range_naming_the_bound():
    with pytest.raises(OutOfRange, match="oldest available position is 101"):
        subscribe(preset="custom", replay_position=99)
    with pytest.raises(OutOfRange, match="latest position is 250"):
        subscribe(preset="custom", replay_position=251)


def test_every_bad_field_is_named_at_once():
    with pytest.raises(InvalidArgument) as caught:
        subscribe(num_requested=1001, preset="latest", replay_position=5, event_types=["lead_captured", "nope"],
                  subject_type="", subject_id="lead-1")
    assert {v.field for v in caught.value.violations} == {"num_requested", "replay_position", "event_types[1]",
                                                         "subject_id"}


def test_the_filters_pick_events_by_type_and_subject():
    won = make_event("opportunity_won", {"opportunity_id": "opp-1"}, {"account_id": "acc-1"})
    lost = make_event("opportunity_lost", {"opportunity_id": "opp-2"}, {"account_id": "acc-2"})
    captured = make_event("lead_captured", {"lead_id": "lead-1"}, {"lead": {}})
    closed_at_acc_1 = subscribe(event_types=["opportunity_won", "opportunity_lost"], subject_type="account",
                                subject_id="acc-1")
    assert [closed_at_acc_1.matches(e) for e in (won, lost, captured)] == [True, False, False]
    assert [subscribe(subject_type="lead").matches(e) for e in (won, lost, captured)] == [False, False, True]
    assert all(subscribe().matches(e) for e in (won, lost, captured))


def test_asking_for_more_adds_up_to_the_cap_and_a_slow_reader_past_retention_is_stopped():
    subscription = Subscription(after=120, pending=900)
    subscription.ask(500)
    assert subscription.pending == 1000
    with pytest.raises(InvalidArgument):
        subscription.ask(-1)
    subscription.check_still_kept(KEPT)
    with pytest.raises(OutOfRange):
        Subscription(after=50, pending=1).check_still_kept(KEPT)


def test_the_catalogue_flags_fields_an_event_does_not_declare_or_lacks():
    event = make_event("lead_scored", {"lead_id": "lead-1"}, {"score": {"total": 70}, "source": "web"})
    assert undeclared_keys(event) == set() and missing_keys(event) == set()
    assert undeclared_keys({**event, "secret": 1}) == {"secret"}
    assert missing_keys({k: v for k, v in event.items() if k != "source"}) == {"source"}
    assert all(spec.description and spec.sources for spec in EVENT_TYPES.values())


def test_an_empty_position_is_waited_for_from_when_it_was_first_found_then_skipped():
    subscription = Subscription(after=10, pending=5)
    assert subscription.waits_for(11, now=100.0)
    assert subscription.waits_for(11, now=100.0 + GAP_WAIT_SECONDS - 0.1)
    assert not subscription.waits_for(11, now=100.0 + GAP_WAIT_SECONDS)
    assert subscription.waits_for(12, now=100.0 + GAP_WAIT_SECONDS)  # another gap: its own wait
    assert LATE_PAGE_SECONDS < GAP_WAIT_SECONDS  # a late writer pages again before any reader skips


def test_a_large_read_is_cut_into_responses_that_each_say_how_far_they_went():
    from services.reporting import stream_mappers
    big = {"note": "x" * (stream_mappers.RESPONSE_BYTES // 2)}
    found = [{"position": p, "source_service": "capture",
              "payload": make_event("lead_captured", {"lead_id": f"lead-{p}"}, {"lead": big})} for p in (5, 6, 7)]
    responses = list(stream_mappers.responses(found, read_up_to=9, pending=10))
    assert [[e.position for e in r.events] for r in responses] == [[5], [6], [7]]
    assert [(r.latest_position, r.pending_num_requested) for r in responses] == [(5, 12), (6, 11), (9, 10)]
