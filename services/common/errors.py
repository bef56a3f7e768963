"""Domain errors every Leadflow service raises; services/common/grpc.py maps them to gRPC status once."""
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: ``field`` is the request path, e.g. ``lead.email``."""

    field: str
    description: str


class LeadflowError(Exception):
    """Base of the errors a caller can act on; anything else is an internal error."""


class InvalidArgument(LeadflowError):
    def __init__(self, violations):
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))


class NotFound(LeadflowError):
    def __init__(self, kind: str, identifier: str):
        self.kind, self.identifier = kind, identifier
        super().__init__(f"{kind} {identifier!r} not found")


class FailedPrecondition(LeadflowError):
    pass


class Unauthenticated(LeadflowError):
    pass


class PermissionDenied(LeadflowError):
    pass


class OutOfRange(LeadflowError):
    """A position or range outside what is kept (e.g. an event stream position older than retention)."""


class ResourceExhausted(LeadflowError):
    """A limit of the server is reached (e.g. open event streams); retry later or elsewhere."""


class Validator:
    """Collects every field violation of a request so the caller learns all of them at once."""

    def __init__(self):
        self.violations = []

    def check(self, condition: bool, field: str, description: str) -> bool:
        if not condition:
            self.violations.append(FieldViolation(field, description))
        return condition

    def max_length(self, value: str, limit: int, field: str) -> bool:
        return self.check(len(value) <= limit, field, f"must be at most {limit} characters (got {len(value)})")

    def required(self, value, field: str) -> bool:
        return self.check(bool(value), field, "is required")

    def raise_if_invalid(self):
        if self.violations:
            raise InvalidArgument(self.violations)
