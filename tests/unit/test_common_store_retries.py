"""services.common.store.retry_reason / retry_delay: which failed transactions are run again."""
import pytest
from pymongo.errors import OperationFailure

from services.common.store import (
    MAX_TRANSACTION_ATTEMPTS, RETRY_DELAY_MAX, CommitFailed, StaleWrite, retry_delay, retry_reason)


def _failure(code, labels=()):
    return OperationFailure("boom", code, {"code": code, "errmsg": "boom", "errorLabels": list(labels)})


def test_a_stale_read_is_retried():
    assert retry_reason(StaleWrite("lead L-1 changed")) == "stale_write"


@pytest.mark.parametrize("error", [
    _failure(112, ["TransientTransactionError"]),  # MongoDB, statement inside the transaction
    _failure(112),  # a write conflict answered without its label
    _failure(251, ["TransientTransactionError"]),  # NoSuchTransaction: the server ended it
    CommitFailed(_failure(112, ["TransientTransactionError"])),
])
def test_write_conflicts_as_mongodb_reports_them_are_retried(error):
    assert retry_reason(error) == "write_conflict"


def test_a_commit_answered_with_secantusdbs_internal_error_is_a_commit_conflict():
    assert retry_reason(CommitFailed(_failure(1))) == "commit_conflict"


def test_an_internal_error_from_a_statement_is_not_retried():
    # Only the commit's InternalError means "rolled back, run again"; a statement's is a real failure.
    assert retry_reason(_failure(1)) is None


@pytest.mark.parametrize("error", [
    CommitFailed(_failure(2)), _failure(11000), _failure(2), ValueError("lead.email is invalid"), KeyError("x")])
def test_verdicts_and_our_own_errors_are_not_retried(error):
    assert retry_reason(error) is None


def test_back_off_is_jittered_and_bounded():
    delays = [retry_delay(attempt) for attempt in range(1, MAX_TRANSACTION_ATTEMPTS + 1) for _ in range(50)]

    assert all(0 <= delay <= RETRY_DELAY_MAX for delay in delays)
    assert len(set(delays)) > len(delays) // 2
