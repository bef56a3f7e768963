"""services.common.mappers (paging, timestamps) and services.common.events (envelope, time format)."""
import base64
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from google.protobuf import struct_pb2
from leadflow.capture.v1 import capture_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from leadflow.common.v1.common_pb2 import PageRequest

from services.common.errors import InvalidArgument
from services.common.events import ENVELOPE_KEYS, SCHEMA_VERSION, iso, make_event, parse_iso, utcnow
from services.common.mappers import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    from_timestamp,
    next_page_token,
    enum_label,
    page_window,
    struct_to_dict,
    to_timestamp,
)

CET = timezone(timedelta(hours=1))


# --- paging ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size, limit", [(0, DEFAULT_PAGE_SIZE), (1, 1), (20, 20), (MAX_PAGE_SIZE, MAX_PAGE_SIZE),
                                         (MAX_PAGE_SIZE + 1, MAX_PAGE_SIZE), (2**31 - 1, MAX_PAGE_SIZE)])
def test_first_page_starts_at_zero_with_a_capped_size(size, limit):
    assert page_window(PageRequest(page_size=size)) == (0, limit)


def test_negative_page_size_is_rejected_and_named():
    with pytest.raises(InvalidArgument) as raised:
        page_window(PageRequest(page_size=-1), field="page")

    assert [v.field for v in raised.value.violations] == ["page.page_size"]


def test_walking_pages_with_the_issued_tokens_visits_every_item_once():
    items = list(range(23))
    seen, request = [], PageRequest(page_size=5)
    for _ in range(10):
        offset, limit = page_window(request)
        page = items[offset:offset + limit]
        seen.extend(page)
        token = next_page_token(offset, limit, len(page))
        if not token:
            break
        request = PageRequest(page_size=5, page_token=token)

    assert seen == items


def test_a_full_last_page_is_followed_by_one_empty_page():
    token = next_page_token(0, 5, 5)
    assert token
    offset, limit = page_window(PageRequest(page_size=5, page_token=token))

    assert (offset, limit) == (5, 5)
    assert next_page_token(offset, limit, 0) == ""


def test_a_short_page_is_the_last_one():
    assert next_page_token(100, 50, 49) == ""


def test_page_size_may_change_between_pages():
    token = next_page_token(0, 10, 10)

    assert page_window(PageRequest(page_size=3, page_token=token)) == (10, 3)


@pytest.mark.parametrize("token", ["not-a-token", "!!!", "MTA", base64.urlsafe_b64encode(b"ten").decode(),
                                   base64.urlsafe_b64encode(b"\xff\xfe").decode()])
@pytest.mark.parametrize("field", ["page", "listing.page"])
def test_a_token_this_service_did_not_issue_is_invalid_argument_naming_the_token(token, field):
    with pytest.raises(InvalidArgument) as raised:
        page_window(PageRequest(page_token=token), field=field)

    assert [v.field for v in raised.value.violations] == [f"{field}.page_token"]


def test_a_forged_token_with_a_negative_offset_is_invalid_argument():
    forged = base64.urlsafe_b64encode(b"-5").decode()
    with pytest.raises(InvalidArgument) as raised:
        page_window(PageRequest(page_token=forged))

    assert [v.field for v in raised.value.violations] == ["page.page_token"]


# --- timestamps ----------------------------------------------------------------------------------------

def test_unset_timestamp_means_not_given():
    assert from_timestamp(Timestamp()) is None
    assert to_timestamp(None) is None


def test_timestamp_round_trip_keeps_the_instant_in_utc():
    moment = datetime(2024, 5, 1, 12, 30, 45, 123000, tzinfo=CET)

    back = from_timestamp(to_timestamp(moment))

    assert back == moment
    assert back.utcoffset() == timedelta(0)
    assert back.hour == 11


def test_naive_datetime_is_taken_as_utc():
    stamp = to_timestamp(datetime(2024, 5, 1, 12, 0))

    assert stamp.ToJsonString() == "2024-05-01T12:00:00Z"


def test_timestamp_from_a_client_is_read_as_utc():
    stamp = Timestamp()
    stamp.FromJsonString("2024-05-01T10:00:00.250+02:00")

    assert from_timestamp(stamp) == datetime(2024, 5, 1, 8, 0, 0, 250000, tzinfo=timezone.utc)


# --- events: time format and envelope -----------------------------------------------------------------------

def test_utcnow_is_utc_and_cut_to_the_millisecond():
    for _ in range(20):
        before = datetime.now(timezone.utc)
        now = utcnow()
        after = datetime.now(timezone.utc)
        assert now.utcoffset() == timedelta(0)
        assert now.microsecond % 1000 == 0
        assert before - timedelta(milliseconds=1) < now <= after


def test_iso_is_utc_with_z_and_parse_iso_round_trips():
    moment = datetime(2024, 5, 1, 13, 30, 45, 123000, tzinfo=CET)

    text = iso(moment)

    assert text == "2024-05-01T12:30:45.123000Z"
    assert parse_iso(text) == moment
    assert parse_iso(text).tzinfo is not None


def test_iso_of_utcnow_round_trips_exactly():
    now = utcnow()

    assert parse_iso(iso(now)) == now


def test_make_event_builds_the_envelope_around_subjects_and_snapshot():
    occurred = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    event = make_event("lead_assigned", {"lead_id": "L-1", "rep_id": "rep.one"}, {"team": "team-a"},
                       trace_id="trace-9", occurred_at=occurred)

    assert set(ENVELOPE_KEYS) <= set(event)
    assert uuid.UUID(event["event_id"])
    assert event["event_type"] == "lead_assigned"
    assert event["occurred_at"] == "2024-05-01T12:00:00.000000Z"
    assert event["schema_version"] == SCHEMA_VERSION == 1
    assert event["trace_id"] == "trace-9"
    assert (event["lead_id"], event["rep_id"], event["team"]) == ("L-1", "rep.one", "team-a")


def test_make_event_gives_each_event_its_own_id_and_a_trace_when_none_is_known():
    first = make_event("lead_scored", {"lead_id": "L-1"}, {})
    second = make_event("lead_scored", {"lead_id": "L-1"}, {})

    assert first["event_id"] != second["event_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first["trace_id"])
    assert first["trace_id"] != second["trace_id"]
    assert abs(parse_iso(first["occurred_at"]) - utcnow()) < timedelta(seconds=5)


@pytest.mark.parametrize("subjects", [{"lead_id": ""}, {"lead_id": "L-1", "rep_id": None}])
def test_make_event_refuses_an_unset_subject_id(subjects):
    with pytest.raises(ValueError, match="lead_scored"):
        make_event("lead_scored", subjects, {})


def _struct(document: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(document)
    return message


def test_a_definition_comes_back_as_the_caller_wrote_it():
    document = {"threshold": 60.5, "groups": [{"id": "fit", "criteria": [{"points": 5, "when": None}]}]}
    assert struct_to_dict(_struct(document)) == document


def test_nan_and_infinity_in_a_sent_document_are_refused_by_their_path():
    document = _struct({"threshold": float("nan"), "groups": [{"criteria": [{"points": 1}, {"points": float("inf")}]}],
                        "ok": 3})
    with pytest.raises(InvalidArgument) as raised:
        struct_to_dict(document, "lead")
    assert [(v.field, v.description) for v in raised.value.violations] == [
        ("lead.groups[0].criteria[1].points", "must be a finite number"), ("lead.threshold", "must be a finite number")]


def test_an_enum_value_reads_as_its_label_and_an_unknown_one_is_refused_by_field():
    page_view = capture_pb2.ActivityType.Value("ACTIVITY_TYPE_PAGE_VIEW")
    assert enum_label(capture_pb2.ActivityType, page_view, "type", "ACTIVITY_TYPE_") == "page_view"
    with pytest.raises(InvalidArgument) as raised:
        enum_label(capture_pb2.ActivityType, 999, "type", "ACTIVITY_TYPE_")
    assert [(v.field, v.description) for v in raised.value.violations] == [("type", "999 is not a known value")]
