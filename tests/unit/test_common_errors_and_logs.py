"""services.common.errors (Validator), services.common.logs (masking, JSON lines with trace fields)
and services.common.rpc.to_grpc_error (the one mapping from domain errors to gRPC status)."""
import json
import logging
import sys

import pytest
from google.rpc import error_details_pb2
from grpc import StatusCode
from nameko_grpc.errors import GrpcError

from services.common import errors, logs
from services.common.errors import FieldViolation, InvalidArgument, Validator
from services.common.events import parse_iso
from services.common.rpc import to_grpc_error


# --- Validator ---------------------------------------------------------------------------------------

def test_validator_collects_every_violation_in_order():
    check = Validator()
    check.required("", "lead.email")
    check.max_length("x" * 11, 10, "lead.first_name")
    check.check(False, "lead.company_size", "must be between 0 and 10")
    check.required("present", "lead.source")
    check.max_length("x" * 10, 10, "lead.last_name")

    with pytest.raises(InvalidArgument) as raised:
        check.raise_if_invalid()

    assert raised.value.violations == (
        FieldViolation("lead.email", "is required"),
        FieldViolation("lead.first_name", "must be at most 10 characters (got 11)"),
        FieldViolation("lead.company_size", "must be between 0 and 10"),
    )


def test_validator_without_violations_does_not_raise():
    check = Validator()
    assert check.required("x", "a") is True
    assert check.max_length("abc", 3, "b") is True
    assert check.check(True, "c", "never") is True
    check.raise_if_invalid()
    assert check.violations == []


@pytest.mark.parametrize("value", ["", None, 0, [], {}])
def test_required_rejects_empty_values(value):
    check = Validator()
    assert check.required(value, "f") is False
    assert check.violations == [FieldViolation("f", "is required")]


def test_invalid_argument_message_lists_every_field():
    exc = InvalidArgument([FieldViolation("lead.email", "is required"), FieldViolation("lead.phone", "bad")])

    assert str(exc) == "lead.email: is required; lead.phone: bad"


def test_not_found_names_kind_and_identifier():
    exc = errors.NotFound("lead", "L-1")

    assert str(exc) == "lead 'L-1' not found"
    assert (exc.kind, exc.identifier) == ("lead", "L-1")


# --- to_grpc_error ------------------------------------------------------------------------------------

def _bad_request(status) -> list:
    found = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.extend((v.field, v.description) for v in bad_request.field_violations)
    return found


def test_invalid_argument_carries_every_field_violation_in_status_details():
    exc = InvalidArgument([FieldViolation("lead.email", "is required"),
                           FieldViolation("lead.custom_fields[x]", "too long")])
    error = to_grpc_error(exc, "trace-1")

    assert error.code == StatusCode.INVALID_ARGUMENT
    assert error.status.code == StatusCode.INVALID_ARGUMENT.value[0]
    assert _bad_request(error.status) == [("lead.email", "is required"), ("lead.custom_fields[x]", "too long")]
    assert "lead.email: is required" in error.message
    assert error.status.message == error.message


def test_invalid_argument_status_survives_the_trailing_metadata_round_trip():
    """What the client decodes from grpc-status-details-bin still names the fields."""
    error = to_grpc_error(InvalidArgument([FieldViolation("page.page_token", "bad")]))
    received = GrpcError.from_headers(dict(error.as_headers()))

    assert received.code == StatusCode.INVALID_ARGUMENT
    assert _bad_request(received.status) == [("page.page_token", "bad")]


def test_an_error_quoting_huge_values_still_fits_the_trailers_a_client_accepts():
    """grpcio refuses trailers over 8 KiB (percent-encoded): the caller would see a broken stream."""
    huge = "💥" * 100_000
    error = to_grpc_error(InvalidArgument([FieldViolation(f"stage_map[{huge}]", f"unknown stage {huge!r}")
                                           for _ in range(50)]))
    trailers = dict(error.as_headers())
    received = GrpcError.from_headers(trailers)

    assert sum(len(key) + len(value) for key, value in trailers.items()) < 8 * 1024
    assert received.code == StatusCode.INVALID_ARGUMENT
    violations = _bad_request(received.status)
    assert len(violations) == 10 and violations[0][0].startswith("stage_map[💥") and violations[0][0].endswith("…")
    assert to_grpc_error(errors.NotFound("lead", huge)).message.endswith("…")


@pytest.mark.parametrize("exc, code", [
    (errors.NotFound("lead", "L-404"), StatusCode.NOT_FOUND),
    (errors.FailedPrecondition("rep is paused"), StatusCode.FAILED_PRECONDITION),
    (errors.Unauthenticated("unknown or revoked token"), StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied("needs admin"), StatusCode.PERMISSION_DENIED),
])
def test_domain_errors_map_to_their_status_code_with_their_message(exc, code):
    error = to_grpc_error(exc)

    assert error.code == code
    assert error.message == str(exc)
    assert error.status.code == code.value[0]
    assert _bad_request(error.status) == []


def test_unexpected_exception_is_internal_without_leaking_its_message():
    secret = "mongodb://admin:hunter2@db:27017 refused connection for jane@example.com"
    error = to_grpc_error(RuntimeError(secret), "4f1c2a9e")

    assert error.code == StatusCode.INTERNAL
    assert "hunter2" not in error.message and "jane" not in error.message and "RuntimeError" not in error.message
    assert "4f1c2a9e" in error.message  # the trace id finds the server's log line
    assert error.status is None


def test_an_existing_grpc_error_passes_through_unchanged():
    original = GrpcError(code=StatusCode.UNAVAILABLE, message="server shutting down")

    assert to_grpc_error(original) is original


# --- mask_personal_data -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, gone, kept", [
    ("lead john.doe@example.com captured", "john.doe", "j***@example.com"),
    ("from Jane.Roe+crm@Acme-Corp.co.uk", "Jane.Roe+crm", "J***@Acme-Corp.co.uk"),
    ("call +14155550100 now", "4155550100", "***00"),
    ("phone +49 30 1234567", "30 1234567", "***67"),
    ("phone +44 20 7946 0958", "7946 0958", "***58"),
    ("phone +86 138 0013 8000", "138 0013", "***00"),
    ("phone 415-555-0100", "555-0100", "***00"),
    ("phone 0049 30 12345678", "12345678", "***78"),
])
def test_emails_and_phones_are_masked_beyond_use(text, gone, kept):
    masked = logs.mask_personal_data(text)

    assert gone not in masked
    assert kept in masked


def test_every_email_and_phone_of_a_line_is_masked():
    masked = logs.mask_personal_data("a@x.io, bob@y.io and +14155550100 / +442079460958")

    assert masked == "a***@x.io, b***@y.io and ***00 / ***58"


@pytest.mark.parametrize("text", ["phone +1 (415) 555-0100", "phone (415) 555-0100"])
def test_phone_with_parenthesised_area_code_is_masked(text):
    assert "555-0100" not in logs.mask_personal_data(text)


@pytest.mark.parametrize("email", ["josé@example.com", "张伟@example.cn"])
def test_internationalised_email_is_masked(email):
    assert email not in logs.mask_personal_data(f"duplicate lead {email}")


@pytest.mark.parametrize("text", [
    "2024-05-01",
    "2024-05-01T12:30:45.123000Z",
    "2024-05-01 12:30:45,123 took 1234 ms",
    "HTTP/1.1 200 OK",
    '"POST /leadflow.capture.v1.CaptureService/CaptureLead HTTP/2" 200 1534',
    "lead 3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b trace 4f1c2a9e8b7d6c5e4f3a2b1c0d9e8f7a",
    "company_size 50-499, score 85/100, threshold 60",
])
def test_dates_status_lines_sizes_and_ids_are_left_alone(text):
    assert logs.mask_personal_data(text) == text


def test_uuid_id_whose_last_group_is_all_digits_is_left_alone():
    line = "lead 123e4567-e89b-42d3-a456-426614174000 assigned"

    assert logs.mask_personal_data(line) == line


# --- JsonFormatter and bind ------------------------------------------------------------------------------

def _record(msg, *args, exc_info=None, level=logging.INFO):
    return logging.LogRecord("services.capture", level, __file__, 1, msg, args, exc_info)


@pytest.fixture
def fresh_trace_context():
    token = logs.trace_context.set({})
    yield
    logs.trace_context.reset(token)


def test_json_formatter_emits_one_json_object_per_record(fresh_trace_context):
    line = logs.JsonFormatter("capture").format(_record("captured %s leads", 3, level=logging.WARNING))
    entry = json.loads(line)

    assert "\n" not in line
    assert entry["level"] == "warning"
    assert entry["service"] == "capture"
    assert entry["logger"] == "services.capture"
    assert entry["msg"] == "captured 3 leads"
    assert entry["ts"].endswith("Z") and parse_iso(entry["ts"]).tzinfo is not None
    assert "trace_id" not in entry


def test_json_formatter_masks_personal_data_in_the_formatted_message(fresh_trace_context):
    entry = json.loads(logs.JsonFormatter("capture").format(_record("lead %s / %s", "ann@acme.com", "+14155550100")))

    assert entry["msg"] == "lead a***@acme.com / ***00"


def test_json_formatter_masks_personal_data_in_tracebacks(fresh_trace_context):
    try:
        raise ValueError("cannot reach ann@acme.com")
    except ValueError:
        exc_info = sys.exc_info()
    entry = json.loads(logs.JsonFormatter("capture").format(_record("failed", exc_info=exc_info)))

    assert "ValueError" in entry["exc"]
    assert "ann@acme.com" not in entry["exc"]
    assert "a***@acme.com" in entry["exc"]


def test_json_formatter_keeps_non_ascii_readable(fresh_trace_context):
    line = logs.JsonFormatter("capture").format(_record("公司 %s", "北京"))

    assert "公司 北京" in line


def test_bound_trace_fields_appear_on_every_line(fresh_trace_context):
    formatter = logs.JsonFormatter("scoring")
    logs.bind(trace_id="t-1", lead_id="L-1")
    logs.bind(event_id="E-1", lead_id=None)  # unset values do not erase what is bound

    first = json.loads(formatter.format(_record("scored")))
    second = json.loads(formatter.format(_record("qualified")))

    for entry in (first, second):
        assert (entry["trace_id"], entry["lead_id"], entry["event_id"]) == ("t-1", "L-1", "E-1")


def test_resetting_a_binding_restores_the_previous_fields(fresh_trace_context):
    formatter = logs.JsonFormatter("scoring")
    logs.bind(trace_id="outer")
    token = logs.bind(trace_id="inner", lead_id="L-2")
    assert json.loads(formatter.format(_record("x")))["trace_id"] == "inner"

    logs.trace_context.reset(token)
    entry = json.loads(formatter.format(_record("y")))

    assert entry["trace_id"] == "outer"
    assert "lead_id" not in entry


def test_trace_context_set_directly_is_used(fresh_trace_context):
    logs.trace_context.set({"trace_id": "abc123"})

    assert json.loads(logs.JsonFormatter("routing").format(_record("x")))["trace_id"] == "abc123"


# --- costs nothing, hides nothing --------------------------------------------------------------------

def test_masking_a_megabyte_without_an_at_sign_returns_it_unchanged():
    # The old pattern backtracked over every start of such a token: minutes for 100,000 characters.
    text = "x" * 1_000_000

    assert logs.mask_personal_data(text) == text


def test_masking_a_megabyte_of_at_signs_masks_nothing_that_is_not_an_email():
    text = "@" * 1_000_000

    assert logs.mask_personal_data(text) == text


def test_an_email_after_a_long_token_is_still_masked():
    text = "y" * 200_000 + " ann@acme.com"

    assert logs.mask_personal_data(text).endswith(" a***@acme.com")


def test_emails_side_by_side_are_each_masked():
    assert logs.mask_personal_data("ann@acme.com,bob@x.org;c@y.cn") == "a***@acme.com,b***@x.org;c***@y.cn"


def test_a_huge_value_is_cut_in_the_line_and_says_how_much_was_left_out(fresh_trace_context):
    entry = json.loads(logs.JsonFormatter("opportunity").format(
        _record("invalid field %s from %s", "z" * 100_000, "ann@acme.com", level=logging.WARNING)))

    assert entry["msg"].startswith("invalid field " + "z" * logs.MAX_VALUE_CHARS + "…(+99000 chars)")
    assert entry["msg"].endswith(" from a***@acme.com")


def test_a_huge_message_and_traceback_are_capped(fresh_trace_context):
    try:
        raise ValueError("w" * 100_000)
    except ValueError:
        exc_info = sys.exc_info()
    entry = json.loads(logs.JsonFormatter("capture").format(_record("v" * 100_000, exc_info=exc_info)))

    assert len(entry["msg"]) < logs.MAX_MESSAGE_CHARS + 50
    assert len(entry["exc"]) < logs.MAX_TRACEBACK_CHARS + 50
    assert entry["exc"].startswith("Traceback")


def test_a_message_whose_arguments_do_not_fit_is_still_logged(fresh_trace_context):
    entry = json.loads(logs.JsonFormatter("capture").format(_record("two %s %s", "only-one")))

    assert entry["msg"] == "two %s %s ('only-one',)"


class _Entrypoint:
    logs_its_own_errors = False


class _Worker:
    def __init__(self, entrypoint):
        self.entrypoint = entrypoint


def _worker_error(template, entrypoint):
    try:
        raise KeyError("lead-1")
    except KeyError:
        exc_info = sys.exc_info()
    return logging.LogRecord("nameko.containers", logging.WARNING, __file__, 1, template,
                             (_Worker(entrypoint), exc_info[1]), exc_info)


def test_an_expected_worker_error_is_one_info_line_without_a_traceback():
    record = _worker_error(logs.WorkerErrors.EXPECTED, _Entrypoint())

    assert logs.WorkerErrors().filter(record) is True
    assert (record.levelname, record.exc_info) == ("INFO", None)


def test_an_unexpected_worker_error_keeps_its_level_and_traceback():
    record = _worker_error(logs.WorkerErrors.UNEXPECTED, _Entrypoint())
    record.levelno, record.levelname = logging.ERROR, "ERROR"

    assert logs.WorkerErrors().filter(record) is True
    assert record.levelname == "ERROR" and record.exc_info is not None


def test_worker_errors_of_entrypoints_that_log_their_own_answers_are_not_logged_twice():
    entrypoint = _Entrypoint()
    entrypoint.logs_its_own_errors = True

    assert logs.WorkerErrors().filter(_worker_error(logs.WorkerErrors.UNEXPECTED, entrypoint)) is False
