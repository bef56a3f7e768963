"""Client-streamed files: a header message first, then the bytes in chunks (file imports, attachments)."""
from services.common.errors import FieldViolation, InvalidArgument


def stream_header(messages, part_field: str = "part"):
    """The first message's ``header`` (checked by the caller before any byte is read) and the rest."""
    messages = iter(messages)
    first = next(messages, None)
    if first is None or first.WhichOneof(part_field) != "header":
        raise InvalidArgument([FieldViolation("header", "the first message must carry the header")])
    return first.header, messages


def receive_chunks(messages, spool, max_bytes: int, part_field: str = "part", received_so_far=None) -> int:
    """Write every following ``chunk`` to ``spool``, refusing a file over ``max_bytes`` or with nothing
    in it. Returns the size; ``received_so_far(size)`` hears of each chunk."""
    received = 0
    for index, message in enumerate(messages, start=1):
        if message.WhichOneof(part_field) != "chunk":
            raise InvalidArgument([FieldViolation(f"messages[{index}]", "only the first message is a header")])
        received += len(message.chunk)
        if received > max_bytes:
            raise InvalidArgument([FieldViolation("chunk", f"the file is larger than {max_bytes} bytes")])
        spool.write(message.chunk)
        if received_so_far is not None:
            received_so_far(received)
    if received == 0:
        raise InvalidArgument([FieldViolation("file", "is empty")])
    return received
