"""The event stream's rules, pure: where a subscription starts, what it delivers, how much a client may
ask for. The store side is stream_store.py, the gRPC side the reporting service's Subscribe."""
from dataclasses import dataclass

from services.common.errors import FieldViolation, InvalidArgument, OutOfRange, Validator
from services.common.event_catalogue import EVENT_TYPES

MAX_NUM_REQUESTED = 1000
# An empty position (taken by a writer whose page is not written yet) is waited for this long, then
# skipped; a writer that took more than LATE_PAGE_SECONDS writes its events again (stream_store.py).
GAP_WAIT_SECONDS = 10.0
LATE_PAGE_SECONDS = GAP_WAIT_SECONDS / 2
MAX_SUBJECT_ID_LENGTH = 200
PRESETS = ("latest", "earliest", "custom")
SUBJECT_KEYS = {"lead": "lead_id", "opportunity": "opportunity_id", "account": "account_id"}


@dataclass(frozen=True)
class StreamBounds:
    """The positions a subscription can start after: ``oldest`` is the first event still kept
    (``latest + 1`` when none is), ``latest`` the last one stored."""

    oldest: int
    latest: int


@dataclass
class Subscription:
    """One client's place in the stream: what it has been read up to (``after``), what it wants and
    how many more events it has asked for."""

    after: int
    pending: int
    event_types: tuple[str, ...] = ()
    subject_key: str = ""
    subject_id: str = ""
    gap_at: int = 0  # the empty position it is waiting for, since gap_since (a monotonic time)
    gap_since: float = 0.0

    def matches(self, event: dict) -> bool:
        """Whether the subscription wants ``event`` (its filters, read from the event itself)."""
        if self.event_types and event["event_type"] not in self.event_types:
            return False
        if self.subject_key:
            subject = event.get(self.subject_key) or ""
            return subject == self.subject_id if self.subject_id else bool(subject)
        return True

    def waits_for(self, position: int, now: float) -> bool:
        """Whether to wait for the empty ``position`` still (up to GAP_WAIT_SECONDS from first finding
        it empty) rather than skip it."""
        if self.gap_at != position:
            self.gap_at, self.gap_since = position, now
        return now - self.gap_since < GAP_WAIT_SECONDS

    def ask(self, num_requested: int) -> None:
        self.pending = min(self.pending + checked_num_requested(num_requested, first=False), MAX_NUM_REQUESTED)

    def check_still_kept(self, bounds: StreamBounds) -> None:
        """Retention may remove events a slow subscriber has not read yet: end its stream rather than
        skip them silently."""
        if self.after < bounds.oldest - 1:
            raise OutOfRange(f"the events after position {self.after} are no longer kept; the oldest available "
                             f"position is {bounds.oldest}")


def checked_num_requested(num_requested: int, first: bool) -> int:
    low = 1 if first else 0
    if not low <= num_requested <= MAX_NUM_REQUESTED:
        raise InvalidArgument([FieldViolation("num_requested", f"must be {low}-{MAX_NUM_REQUESTED}, "
                                                               f"not {num_requested}")])
    return num_requested


def subscription_from(num_requested: int, preset: str, replay_position: int, event_types: list[str],
                      subject_type: str, subject_id: str, bounds: StreamBounds) -> Subscription:
    """The subscription a first request asks for, checked: every bad field named at once, then the
    position against what the stream keeps."""
    check = Validator()
    check.check(1 <= num_requested <= MAX_NUM_REQUESTED, "num_requested",
                f"must be 1-{MAX_NUM_REQUESTED}, not {num_requested}")
    preset = preset or "latest"
    check.check(preset in PRESETS, "replay_preset", f"must be one of {', '.join(PRESETS)}")
    check.check(preset == "custom" or replay_position == 0, "replay_position",
                "is read only with REPLAY_PRESET_CUSTOM")
    for index, event_type in enumerate(event_types):
        check.check(event_type in EVENT_TYPES, f"event_types[{index}]",
                    f"{event_type!r} is not an event type on the stream (GetEventTypes lists them)")
    check.check(subject_type in ("", *SUBJECT_KEYS), "subject_type", f"must be one of {', '.join(SUBJECT_KEYS)}")
    check.check(not subject_id or bool(subject_type), "subject_id", "needs subject_type")
    check.max_length(subject_id, MAX_SUBJECT_ID_LENGTH, "subject_id")
    check.raise_if_invalid()

    if preset == "latest":
        after = bounds.latest
    elif preset == "earliest":
        after = bounds.oldest - 1
    else:
        after = replay_position
        if after > bounds.latest:
            raise OutOfRange(f"replay_position {after} is ahead of the stream: the latest position is {bounds.latest}")
        if after < bounds.oldest - 1:
            raise OutOfRange(f"replay_position {after} is older than the retention period; the oldest available "
                             f"position is {bounds.oldest}")
    return Subscription(after=after, pending=num_requested, event_types=tuple(dict.fromkeys(event_types)),
                        subject_key=SUBJECT_KEYS.get(subject_type, ""), subject_id=subject_id)
