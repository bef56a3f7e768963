"""Conversions every service needs between protobuf values and Python ones."""
import base64
import math
from datetime import datetime, timezone

from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp
from leadflow.common.v1 import common_pb2

from services.common.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def to_timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc))
    return stamp


def from_timestamp(stamp: Timestamp, field: str = "timestamp") -> datetime | None:
    """An unset (zero) timestamp means "not given"; one outside years 1-9999 is refused by name."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    try:
        return stamp.ToDatetime(tzinfo=timezone.utc)
    except (OverflowError, ValueError, OSError):
        raise InvalidArgument([FieldViolation(field, "is not a valid time")]) from None


def page_window(page, field: str = "page") -> tuple[int, int]:
    """(offset, limit) of a PageRequest; the token is an opaque encoding of the offset."""
    size = page.page_size or DEFAULT_PAGE_SIZE
    if size < 0:
        raise InvalidArgument([FieldViolation(f"{field}.page_size", "must not be negative")])
    offset = 0
    if page.page_token:
        try:
            offset = int(base64.urlsafe_b64decode(page.page_token.encode()).decode())
        except ValueError:
            offset = -1
        if offset < 0:
            raise InvalidArgument([FieldViolation(f"{field}.page_token", "is not a token this service issued")])
    return offset, min(size, MAX_PAGE_SIZE)


def next_page_token(offset: int, limit: int, returned: int) -> str:
    return base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if returned == limit else ""


def struct_to_dict(definition: struct_pb2.Struct, field: str = "definition") -> dict:
    """A Struct a caller sent (a scoring model, routing policy or pipeline definition, a lead) as a dict.

    NaN and infinity fit in a protobuf double but not in JSON, nor in any rule a user can mean: each
    is refused by its path, where json_format would fail with an internal error (and a stored
    definition could never be shown again)."""
    bad = []
    pending = [(f"{field}.{key}", value) for key, value in definition.fields.items()]
    while pending:
        path, value = pending.pop()
        kind = value.WhichOneof("kind")
        if kind == "number_value" and not math.isfinite(value.number_value):
            bad.append(FieldViolation(path, "must be a finite number"))
        elif kind == "struct_value":
            pending.extend((f"{path}.{key}", item) for key, item in value.struct_value.fields.items())
        elif kind == "list_value":
            pending.extend((f"{path}[{i}]", item) for i, item in enumerate(value.list_value.values))
    if bad:
        raise InvalidArgument(sorted(bad, key=lambda v: v.field))
    return MessageToDict(definition)


def enum_label(enum_type, value: int, field: str, prefix: str) -> str:
    """The lower-case label of an enum value without its prefix (ACTIVITY_TYPE_PAGE_VIEW -> page_view).
    Enums are open: a client built from a newer contract, or a broken one, can send any number, which
    is refused by field rather than failing inside."""
    try:
        return enum_type.Name(value).removeprefix(prefix).lower()
    except ValueError:
        raise InvalidArgument([FieldViolation(field, f"{value} is not a known value")]) from None


def import_progress_to_proto(progress):
    """services.common.import_progress.ImportProgress -> leadflow.common.v1.ImportProgress."""
    return common_pb2.ImportProgress(
        import_id=progress.import_id, state=f"IMPORT_STATE_{progress.state.name}",
        phase=f"IMPORT_PHASE_{progress.phase.name}", bytes_received=progress.bytes_received,
        rows_expected=progress.rows_expected, rows_read=progress.rows_read, rows_stored=progress.rows_stored,
        rows_rejected=progress.rows_rejected, stored_through_row=progress.stored_through_row,
        message=progress.message, started_by=progress.started_by,
        started_at=to_timestamp(datetime.fromtimestamp(progress.started_at, timezone.utc)),
        updated_at=to_timestamp(datetime.fromtimestamp(progress.updated_at, timezone.utc)))
