"""How far a file import has got, for progress bars (the CLI's, the console's import pages): the client
chooses an import id, sends it in the import's header, and polls GetImportProgress while the import
call runs. Both imports (leads in capture, sales history in opportunity) report here, the same way.

The progress lives in Redis, the platform's shared fast state: any replica can answer the poll, a
progress write costs the store nothing while it is the bottleneck, and a stop caused by the store
(busy or unreachable) can still be recorded. Progress is a convenience: when Redis is unreachable the
import goes on untracked rather than failing."""
import logging
import re
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

import redis.exceptions

from services.common.auth import Principal, Role
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, PermissionDenied
from services.common.logs import trace_context
from services.common.outages import OUTAGE_ERRORS
from services.common.redis_store import RedisProvider
from services.common.rpc import to_grpc_error
from services.common.store import StoreBusy

log = logging.getLogger(__name__)

IMPORT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,63}$")
KEEP_SECONDS = 24 * 3600  # after the last update
# A running import writes at least every batch (500 rows), which takes a few seconds even on a busy
# store; one silent for this long has lost its process.
SILENT_AFTER_SECONDS = 120
WRITE_EVERY_SECONDS = 0.5


class ImportState(Enum):
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class ImportPhase(Enum):
    RECEIVING = "receiving"
    READING = "reading"
    STORING = "storing"
    FINISHED = "finished"


COUNTERS = ("bytes_received", "rows_expected", "rows_read", "rows_stored", "rows_rejected", "stored_through_row")


@dataclass
class ImportProgress:
    import_id: str
    state: ImportState
    phase: ImportPhase
    started_by: str
    started_at: float  # epoch seconds
    updated_at: float
    message: str = ""
    bytes_received: int = 0
    rows_expected: int = 0
    rows_read: int = 0
    rows_stored: int = 0
    rows_rejected: int = 0
    stored_through_row: int = 0

    @classmethod
    def from_hash(cls, import_id: str, fields: dict, now: float) -> "ImportProgress":
        progress = cls(import_id=import_id, state=ImportState(fields["state"]), phase=ImportPhase(fields["phase"]),
                       started_by=fields.get("started_by", ""), started_at=float(fields["started_at"]),
                       updated_at=float(fields["updated_at"]), message=fields.get("message", ""),
                       **{name: int(fields.get(name, 0)) for name in COUNTERS})
        if progress.state is ImportState.RUNNING and now - progress.updated_at > SILENT_AFTER_SECONDS:
            progress.state = ImportState.INTERRUPTED
            progress.message = (f"the service stopped reporting this import {int(now - progress.updated_at)} s ago; "
                                f"{_where(progress.stored_through_row)}; send the same import again to finish it")
        return progress


def _where(stored_through_row: int) -> str:
    return f"the file is stored up to row {stored_through_row}" if stored_through_row else "no row was stored"


def checked_import_id(import_id: str, field_name: str) -> str:
    """The client's id, or a new one when it sent none."""
    if not import_id:
        return uuid.uuid4().hex
    if not IMPORT_ID.match(import_id):
        raise InvalidArgument([FieldViolation(
            field_name, "must be 8 to 64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")])
    return import_id


# Claims the id unless an import holding it still runs (and has reported recently): one round trip, so
# two imports sent with one id at once cannot both start.
_BEGIN = """
local state = redis.call('HGET', KEYS[1], 'state')
local updated = tonumber(redis.call('HGET', KEYS[1], 'updated_at') or '0')
if state == 'running' and tonumber(ARGV[1]) - updated <= tonumber(ARGV[2]) then
  return redis.call('HGET', KEYS[1], 'started_by') or ''
end
redis.call('DEL', KEYS[1])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return false
"""


class ImportProgressBoard:
    """The imports of one service, by id."""

    def __init__(self, keys, clock=time.time):
        self.keys = keys
        self.clock = clock
        self._begin = keys.client.register_script(_BEGIN)

    def _key(self, import_id: str) -> str:
        return self.keys.key("import", import_id)

    def begin(self, import_id: str, started_by: str) -> "ImportTracker":
        """A tracker for a new import; FailedPrecondition when an import with this id is still running."""
        now = self.clock()
        fields = {"state": ImportState.RUNNING.value, "phase": ImportPhase.RECEIVING.value, "started_by": started_by,
                  "started_at": repr(now), "updated_at": repr(now), "message": "",
                  **{name: "0" for name in COUNTERS}}
        args = [repr(now), SILENT_AFTER_SECONDS, KEEP_SECONDS]
        for name, value in fields.items():
            args += [name, value]
        try:
            holder = self._begin(keys=[self._key(import_id)], args=args)
        except redis.exceptions.RedisError as exc:
            log.warning("import %s runs without progress reports: Redis is unreachable (%s)", import_id, exc)
            return ImportTracker(self, import_id, enabled=False)
        if holder is not None:
            raise FailedPrecondition(f"import {import_id} is still running (started by {holder or 'someone'}); "
                                     f"follow it with GetImportProgress, or send a new import with another id")
        return ImportTracker(self, import_id)

    def get(self, import_id: str, reader: Principal, field_name: str = "import_id") -> ImportProgress:
        """The import's progress, for whoever started it and for admins."""
        if not import_id:
            raise InvalidArgument([FieldViolation(field_name, "is required")])
        fields = self.keys.client.hgetall(self._key(checked_import_id(import_id, field_name)))
        if not fields:
            raise NotFound("import", import_id)  # never begun here, or ended more than a day ago
        progress = ImportProgress.from_hash(import_id, fields, self.clock())
        if reader.role is not Role.ADMIN and reader.id != progress.started_by:
            raise PermissionDenied(f"import {import_id} was started by someone else; its progress is theirs "
                                   f"and admins'")
        return progress

    def write(self, import_id: str, fields: dict) -> None:
        pipeline = self.keys.client.pipeline(transaction=True)
        pipeline.hset(self._key(import_id), mapping={**fields, "updated_at": repr(self.clock())})
        pipeline.expire(self._key(import_id), KEEP_SECONDS)
        pipeline.execute()


class ImportTracker:
    """One import's reports. Counters are written at most every WRITE_EVERY_SECONDS, and at once when a
    batch is stored or the phase changes, so reporting never costs the import noticeable time."""

    def __init__(self, board: ImportProgressBoard, import_id: str, enabled: bool = True):
        self.board = board
        self.import_id = import_id
        self.enabled = enabled
        self.counts = dict.fromkeys(COUNTERS, 0)  # as last reported, written or not
        self._pending = {}
        self._written_at = 0.0

    def update(self, *, phase: ImportPhase | None = None, at_once: bool = False, **counters) -> None:
        unknown = set(counters) - set(COUNTERS)
        if unknown:
            raise ValueError(f"unknown import counters {sorted(unknown)}")
        self.counts.update({name: int(value) for name, value in counters.items()})
        self._pending.update({name: str(int(value)) for name, value in counters.items()})
        if phase is not None:
            self._pending["phase"] = phase.value
            at_once = True
        if at_once or self.board.clock() - self._written_at >= WRITE_EVERY_SECONDS:
            self._flush()

    def end(self, state: ImportState, message: str = "") -> None:
        self._pending.update({"state": state.value, "phase": ImportPhase.FINISHED.value, "message": message})
        self._flush()

    def _flush(self) -> None:
        if not self.enabled or not self._pending:
            return
        try:
            self.board.write(self.import_id, self._pending)
        except redis.exceptions.RedisError as exc:
            # The import matters more than its progress bar: it goes on, untracked from here.
            log.warning("import %s goes on without progress reports: Redis is unreachable (%s)", self.import_id, exc)
            self.enabled = False
        self._pending = {}
        self._written_at = self.board.clock()


def where_it_stopped(file_label: str, stored_through_row: int, rows_stored: int) -> str:
    """What a caller whose import the store stopped is told. The batches are transactions and rows
    already imported are recognised on the next run, so the answer is to send the same import again."""
    done = (f"the {file_label} is imported up to row {stored_through_row} ({rows_stored:,} rows kept)"
            if stored_through_row else "nothing is imported yet")
    return f"{done}; send the same import again to finish it (rows already imported are recognised and skipped)"


@contextmanager
def tracked(board: ImportProgressBoard, import_id: str, started_by: str, file_label: str):
    """Around a whole import: its tracker, and its end recorded with what the caller is answered — done,
    stopped by the store (with how far it got, from the tracker's counts), or refused."""
    tracker = board.begin(import_id, started_by)
    try:
        yield tracker
    except Exception as exc:  # a killed worker (GreenletExit) stays running, to read INTERRUPTED once silent
        stopped_by_store = isinstance(exc, (StoreBusy, *OUTAGE_ERRORS))
        if stopped_by_store:
            # The gRPC boundary appends ``progress`` to the status message.
            exc.progress = where_it_stopped(file_label, tracker.counts["stored_through_row"],
                                            tracker.counts["rows_stored"])
        answer = to_grpc_error(exc, trace_context.get().get("trace_id", "")).message
        tracker.end(ImportState.STOPPED if stopped_by_store else ImportState.FAILED, answer)
        raise
    tracker.end(ImportState.DONE)


class ImportProgressProvider(RedisProvider):
    def check_ready(self) -> None:
        """Imports run untracked while Redis is away: readiness does not wait for it."""

    def get_dependency(self, worker_ctx):
        return ImportProgressBoard(self.keys)
