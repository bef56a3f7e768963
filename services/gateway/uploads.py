"""Files over HTTP for the client-streaming RPCs (lead file import, attachments, sales history), pure.

A browser uploads with ``multipart/form-data``: the first part, named ``header``, is the RPC's header
message as JSON; every later part is a file. The parts are parsed as the bytes arrive (python-multipart's
push parser) and turned into the RPC's stream — header, then for each file an optional "file start"
message and its chunks — so a 200 MB spreadsheet passes through without being held in memory or on disk.
"""
import json
import re
from collections import deque
from dataclasses import dataclass

from google.protobuf import descriptor as d
from google.protobuf.message_factory import GetMessageClass
from python_multipart.multipart import MultipartParser, parse_options_header

from services.common.errors import FieldViolation
from services.gateway.transcoding import RequestBodyError, Rpc, message_from_json

HEADER_PART = "header"
MAX_HEADER_PART_BYTES = 64 * 1024
# The services take chunks of at most 1 MiB; the parser hands over slices of what the socket gave.
MAX_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class UploadShape:
    """How an upload RPC's request stream is built: ``oneof part {header; [file;] chunk}``."""
    header_field: str
    chunk_field: str
    file_field: str | None  # a per-file start message (several files in one stream)


def upload_shape(method: d.MethodDescriptor) -> UploadShape | None:
    if not method.client_streaming or method.server_streaming:
        return None
    fields = method.input_type.fields_by_name
    header, chunk = fields.get("header"), fields.get("chunk")
    if header is None or chunk is None or chunk.type != d.FieldDescriptor.TYPE_BYTES:
        return None
    file = fields.get("file")
    return UploadShape("header", "chunk", "file" if file is not None else None)


def is_download(method: d.MethodDescriptor) -> bool:
    """Server-streamed files: a first message describing the file, then its bytes as chunks."""
    if method.client_streaming or not method.server_streaming:
        return False
    fields = method.output_type.fields_by_name
    return "chunk" in fields and fields["chunk"].type == d.FieldDescriptor.TYPE_BYTES


def boundary_of(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type or "")
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise RequestBodyError(FieldViolation(
            "body", "must be multipart/form-data: a part named 'header' (the header message as JSON), "
                    "then the file parts"))
    return options[b"boundary"]


@dataclass
class Part:
    name: str
    filename: str
    content_type: str


class MultipartStream:
    """Push parser: ``feed`` bytes as they arrive, ``events`` yields ('start', Part) / ('data', bytes)
    / ('end', Part) in order; ``close`` checks the body ended properly."""

    def __init__(self, boundary: bytes):
        self._events: deque = deque()
        self._header_name = self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._part: Part | None = None
        self._ended = False
        self._parser = MultipartParser(boundary, callbacks={
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: self._add_name(data[start:end]),
            "on_header_value": lambda data, start, end: self._add_value(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": lambda data, start, end: self._events.append(("data", bytes(data[start:end]))),
            "on_part_end": lambda: self._events.append(("end", self._part)),
            "on_end": self._end,
        })

    def _begin(self):
        self._headers, self._part = {}, None

    def _add_name(self, data: bytes):
        self._header_name += data

    def _add_value(self, data: bytes):
        self._header_value += data

    def _header_end(self):
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self):
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._part = Part(name=options.get(b"name", b"").decode("utf-8", "replace"),
                          filename=options.get(b"filename", b"").decode("utf-8", "replace"),
                          content_type=self._headers.get(b"content-type", b"").decode("latin-1").strip())
        self._events.append(("start", self._part))

    def _end(self):
        self._ended = True

    def feed(self, data: bytes) -> None:
        try:
            self._parser.write(data)
        except Exception as error:  # python-multipart raises its own parse errors; all mean a bad body
            raise RequestBodyError(FieldViolation("body", f"not a valid multipart body: {error}")) from None

    def events(self):
        while self._events:
            yield self._events.popleft()

    def close(self) -> None:
        self._parser.finalize()
        if not self._ended:
            raise RequestBodyError(FieldViolation("body", "the multipart body ended before its closing boundary"))


class UploadMessages:
    """Turns multipart events into the RPC's request messages, checking the order as it goes."""

    def __init__(self, rpc: Rpc, shape: UploadShape):
        self.rpc, self.shape = rpc, shape
        self.header_json = bytearray()
        self.header_message = None
        self.files = 0
        self._in = None  # the part being read: "header" or "file"

    @property
    def header_done(self) -> bool:
        return self.header_message is not None

    def on_event(self, kind: str, value) -> list:
        request_class = self.rpc.request_class
        if kind == "start":
            if self.header_message is None and self._in is None:
                if value.name != HEADER_PART:
                    raise RequestBodyError(FieldViolation(
                        HEADER_PART, f"the first part must be named '{HEADER_PART}' (the "
                                     f"{self._header_type_name()} as JSON), not {value.name!r}"))
                self._in = "header"
                return []
            if value.name == HEADER_PART:
                raise RequestBodyError(FieldViolation(HEADER_PART, "only one header part may be sent"))
            self._in = "file"
            self.files += 1
            if self.files > 1 and self.shape.file_field is None:
                raise RequestBodyError(FieldViolation("file", "this upload takes one file"))
            messages = []
            if self.files == 1:
                # The header goes out with the first file, so the file part can fill in what the
                # header left empty: the file's name and type, as a browser's FormData gives them.
                self._fill_from_part(value)
                messages.append(request_class(**{self.shape.header_field: self.header_message}))
            if self.shape.file_field is not None:
                messages.append(request_class(**{self.shape.file_field: self._file_start(value)}))
            return messages
        if kind == "data":
            if self._in == "header":
                self.header_json += value
                if len(self.header_json) > MAX_HEADER_PART_BYTES:
                    raise RequestBodyError(FieldViolation(HEADER_PART, f"larger than {MAX_HEADER_PART_BYTES} bytes"))
                return []
            return [request_class(**{self.shape.chunk_field: value[i:i + MAX_CHUNK_BYTES]})
                    for i in range(0, len(value), MAX_CHUNK_BYTES)]
        # end of a part
        if self._in == "header":
            self.header_message = self._parse_header(value)
        self._in = None
        return []

    def _fill_from_part(self, part: Part) -> None:
        fields = self.header_message.DESCRIPTOR.fields_by_name
        if "filename" in fields and not self.header_message.filename:
            self.header_message.filename = part.filename
        if "content_type" in fields and not self.header_message.content_type:
            self.header_message.content_type = part.content_type

    def finish(self) -> None:
        if self.header_message is None:
            raise RequestBodyError(FieldViolation(HEADER_PART, "is required: the first part, as JSON"))
        if self.files == 0:
            raise RequestBodyError(FieldViolation("file", "is required: a part with the file"))

    def _header_type_name(self) -> str:
        return self.rpc.method.input_type.fields_by_name[self.shape.header_field].message_type.name

    def _parse_header(self, part: Part):
        try:
            body = json.loads(bytes(self.header_json) or b"{}")
        except ValueError as error:
            raise RequestBodyError(FieldViolation(HEADER_PART, f"is not JSON: {error}")) from None
        if not isinstance(body, dict):
            raise RequestBodyError(FieldViolation(HEADER_PART,
                                                  f"must be a JSON object (the {self._header_type_name()})"))
        # Parsed on its own (json_format loses the path inside a oneof), named "header.<field>".
        header_type = self.rpc.method.input_type.fields_by_name[self.shape.header_field].message_type
        return message_from_json(GetMessageClass(header_type)(), body, f"{self.shape.header_field}.")

    def _file_start(self, part: Part):
        """The per-file start message: the part's name picks the table (``opportunities``,
        ``accounts``...), its filename tells the format."""
        field = self.rpc.method.input_type.fields_by_name[self.shape.file_field]
        message = GetMessageClass(field.message_type)()
        if "filename" in field.message_type.fields_by_name:
            message.filename = part.filename
        table = field.message_type.fields_by_name.get("table")
        if table is not None and table.enum_type is not None:
            # Enum values are prefixed with the enum's name in UPPER_SNAKE (ImportTable -> IMPORT_TABLE_).
            prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", table.enum_type.name).upper()
            value = table.enum_type.values_by_name.get(f"{prefix}_{part.name.upper()}")
            choices = [v.name.removeprefix(f"{prefix}_").lower() for v in table.enum_type.values if v.number]
            if value is None or value.number == 0:
                raise RequestBodyError(FieldViolation(
                    f"file[{self.files}]", f"a file part is named after its table: one of {', '.join(choices)}; "
                                           f"got {part.name!r}"))
            message.table = value.number
        return message
