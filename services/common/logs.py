"""Structured JSON logs carrying trace_id / lead_id / event_id, with personal data masked."""
import contextvars
import json
import logging
import re
import sys

from services.common.events import iso, utcnow

# Never mutated in place: bind() and Telemetry set a new dict for the green thread.
trace_context: contextvars.ContextVar[dict] = contextvars.ContextVar("leadflow_trace", default={})  # noqa: B039

# An email is any local part (capture accepts internationalised addresses), "@", a domain. It is found
# from its "@" outwards, never by a pattern that tries every start of a long token (which costs the
# square of the token's length when the token holds no "@").
_AT_DOMAIN = re.compile(r"@([\w.-]+)")
_NOT_LOCAL_PART = frozenset(" \t\n\r\f\v@<>()[]\"',;:")
# A phone is "+" and 7+ digits, or 10+ digits, with up to two separators between digits ("(415) 555-0100").
# Not part of a longer token (the all-digit last group of a UUID is an id), and not a date.
_PHONE = re.compile(r"(?<![\w-])(?:\+\d(?:[\s().-]{0,2}\d){5,14}"
                    r"|(?!\d{4}-\d\d-\d\d)\(?\d(?:[\s().-]{0,2}\d){9,14})(?![\w-])")


# Longest value a log line carries, and the longest message and traceback: one huge value (a 100,000
# character field a client sent) must cost a log line nothing, and makes it no easier to read.
MAX_VALUE_CHARS = 1_000
MAX_MESSAGE_CHARS = 4_000
MAX_TRACEBACK_CHARS = 16_000


def mask_personal_data(text: str) -> str:
    """Keep enough of an email or phone to recognise it, never enough to use it. Linear time."""
    return _PHONE.sub(lambda m: "***" + m.group(0)[-2:], _mask_emails(text))


def _mask_emails(text: str) -> str:
    parts, done = [], 0
    for match in _AT_DOMAIN.finditer(text):
        at = match.start()
        start = at
        # Back over the local part; never into what an earlier match consumed, so each character is
        # looked at a bounded number of times.
        while start > done and text[start - 1] not in _NOT_LOCAL_PART:
            start -= 1
        parts += [text[done:start], text[start:min(start + 1, at)], "***@", match.group(1)]
        done = match.end()
    parts.append(text[done:])
    return "".join(parts)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit} chars)"


def _capped(value):
    return shorten(value, MAX_VALUE_CHARS) if isinstance(value, str) else value


def bind(**fields) -> contextvars.Token:
    """Attach fields (trace_id, lead_id, event_id) to every log line of the current green thread."""
    return trace_context.set({**trace_context.get(), **{k: v for k, v in fields.items() if v}})


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": iso(utcnow()),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": mask_personal_data(shorten(self._message(record), MAX_MESSAGE_CHARS)),
            **trace_context.get(),
        }
        if record.exc_info:
            entry["exc"] = mask_personal_data(shorten(self.formatException(record.exc_info), MAX_TRACEBACK_CHARS))
        return json.dumps(entry, ensure_ascii=False)

    @staticmethod
    def _message(record: logging.LogRecord) -> str:
        message = shorten(str(record.msg), MAX_MESSAGE_CHARS)
        if not record.args:
            return message
        args = record.args
        args = {k: _capped(v) for k, v in args.items()} if isinstance(args, dict) else tuple(map(_capped, args))
        try:
            return message % args
        except (TypeError, ValueError):
            return f"{message} {args!r}"


class WorkerErrors(logging.Filter):
    """nameko logs every failed worker with its traceback, and the errors a caller can act on (a bad
    field, an unknown id) as warnings: thousands of tracebacks that bury the real failures. Errors the
    caller can act on become one info line; entrypoints that log their own answers (the gRPC layer,
    with the status and trace id the caller got) are not logged twice."""

    EXPECTED = "(expected) error handling worker %s: %s"
    UNEXPECTED = "error handling worker %s: %s"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg not in (self.EXPECTED, self.UNEXPECTED) or not record.args:
            return True
        if getattr(getattr(record.args[0], "entrypoint", None), "logs_its_own_errors", False):
            return False
        if record.msg == self.EXPECTED:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


def configure(service: str, level: str = "INFO") -> None:
    logging.getLogger("nameko.containers").addFilter(WorkerErrors())
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter (h2 frames, kombu heartbeats) would drown the service's own lines.
    for noisy in ("h2", "hpack", "kombu", "amqp", "nameko_grpc", "pymongo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
