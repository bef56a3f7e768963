"""Import progress on the real Redis: what a poller sees while an import runs, when its process is gone,
and that an unreachable Redis never stops an import."""
import uuid

import pytest
import redis

from services.common.auth import Principal, Role
from services.common.errors import FailedPrecondition, PermissionDenied
from services.common.import_progress import (SILENT_AFTER_SECONDS, WRITE_EVERY_SECONDS, ImportPhase,
                                             ImportProgressBoard, ImportState)
from services.common.redis_store import RedisKeys
from services.devstack.infrastructure import free_port


ADMIN = Principal("ops", Role.ADMIN, "hq")


class Clock:
    """Time the test moves on, so "later" needs no sleeping."""

    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def board(infra):
    client = redis.Redis.from_url(infra.redis_uri, decode_responses=True)
    yield ImportProgressBoard(RedisKeys(client, f"{infra.redis_prefix}:progress-{uuid.uuid4().hex[:8]}"), Clock())
    client.close()


def test_a_poller_sees_each_stored_batch_at_once_and_row_counts_twice_a_second(board):
    tracker = board.begin("import-0001", "admin")
    tracker.update(phase=ImportPhase.STORING, rows_expected=1000)
    tracker.update(rows_read=10, rows_rejected=1)
    seen = board.get("import-0001", ADMIN)
    assert (seen.state, seen.phase, seen.rows_expected, seen.rows_read) == \
        (ImportState.RUNNING, ImportPhase.STORING, 1000, 0)  # written with the phase, not yet since

    board.clock.now += WRITE_EVERY_SECONDS
    tracker.update(rows_read=20, rows_rejected=2)
    assert (board.get("import-0001", ADMIN).rows_read, board.get("import-0001", ADMIN).rows_rejected) == (20, 2)

    tracker.update(at_once=True, rows_read=21, rows_stored=19, stored_through_row=22)
    seen = board.get("import-0001", ADMIN)
    assert (seen.rows_read, seen.rows_stored, seen.stored_through_row) == (21, 19, 22)

    tracker.end(ImportState.DONE)
    done = board.get("import-0001", ADMIN)
    assert (done.state, done.phase, done.rows_stored, done.message) == \
        (ImportState.DONE, ImportPhase.FINISHED, 19, "")
    # Its starter reads it too; another integration does not.
    assert board.get("import-0001", Principal("admin", Role.INTEGRATION, "")).rows_stored == 19
    with pytest.raises(PermissionDenied, match="started by someone else"):
        board.get("import-0001", Principal("erp-sync", Role.INTEGRATION, ""))


def test_an_import_whose_process_went_silent_is_reported_interrupted_and_its_id_can_finish_it(board):
    tracker = board.begin("import-0002", "ops")
    tracker.update(at_once=True, phase=ImportPhase.STORING, rows_read=1000, rows_stored=1000,
                   stored_through_row=1001)
    with pytest.raises(FailedPrecondition, match="import import-0002 is still running .started by ops"):
        board.begin("import-0002", "admin")

    board.clock.now += SILENT_AFTER_SECONDS + 1
    silent = board.get("import-0002", ADMIN)
    assert silent.state is ImportState.INTERRUPTED
    assert "the file is stored up to row 1001" in silent.message and "send the same import again" in silent.message

    again = board.begin("import-0002", "admin")
    fresh = board.get("import-0002", ADMIN)
    assert (fresh.state, fresh.started_by, fresh.rows_stored) == (ImportState.RUNNING, "admin", 0)
    again.end(ImportState.DONE)


def test_an_unreachable_redis_leaves_the_import_untracked_but_running():
    nowhere = redis.Redis(port=free_port(), socket_connect_timeout=0.5, decode_responses=True)
    board = ImportProgressBoard(RedisKeys(nowhere, "leadflow:test"))
    tracker = board.begin("import-0003", "admin")
    tracker.update(at_once=True, rows_read=5)
    tracker.end(ImportState.DONE)
    assert tracker.enabled is False
