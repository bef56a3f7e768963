"""Structured JSON logs carrying trace_id / lead_id / event_id, with personal data masked."""
import contextvars
import json
import logging
import re
import sys

from services.common.events import iso, utcnow

# Never mutated in place: bind() and Telemetry set a new dict for the green thread.
trace_context: contextvars.ContextVar[dict] = contextvars.ContextVar("leadflow_trace", default={})  # noqa: B039

# Any local part (capture accepts internationalised addresses), then a domain.
_EMAIL = re.compile(r"([^\s@<>()\[\]\"',;:]?)[^\s@<>()\[\]\"',;:]*@([\w.-]+)")
# A phone is "+" and 7+ digits, or 10+ digits, with up to two separators between digits ("(415) 555-0100").
# Not part of a longer token (the all-digit last group of a UUID is an id), and not a date.
_PHONE = re.compile(r"(?<![\w-])(?:\+\d(?:[\s().-]{0,2}\d){5,14}"
                    r"|(?!\d{4}-\d\d-\d\d)\(?\d(?:[\s().-]{0,2}\d){9,14})(?![\w-])")


def mask_personal_data(text: str) -> str:
    """Keep enough of an email or phone to recognise it, never enough to use it."""
    masked = _EMAIL.sub(r"\1***@\2", text)
    return _PHONE.sub(lambda m: "***" + m.group(0)[-2:], masked)


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
            "msg": mask_personal_data(record.getMessage()),
            **trace_context.get(),
        }
        if record.exc_info:
            entry["exc"] = mask_personal_data(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter (h2 frames, kombu heartbeats) would drown the service's own lines.
    for noisy in ("h2", "hpack", "kombu", "amqp", "nameko_grpc", "pymongo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
