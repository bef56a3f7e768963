"""Write conflicts on the real embedded store, and what ``Store.run_in_transaction`` does with them.

The conflict behind failed imports: SecantusDB prunes its oplog (kept for change streams, capped
at ``--oplog-max-entries``, 100,000 by default) every 1,000 oplog writes, and a transaction whose
commit crosses that mark prunes inside its own commit. Two such commits at once delete the same
oldest oplog rows; WiredTiger rolls one back, and SecantusDB answers its ``commitTransaction`` with
``InternalError`` (code 1) and no ``TransientTransactionError`` label, so the driver does not retry.
A busy platform crosses the mark many times a minute once its oplog is full. Here the cap is 10, so
every commit of 1,000 writes prunes and two concurrent ones conflict at once. Leadflow reads no
change streams, so it starts the embedded store without an oplog, and the same writers never conflict.
"""
import itertools
import shutil
import tempfile
import uuid
from pathlib import Path

import eventlet
import pymongo
import pytest
from nameko import config
from nameko.containers import ServiceContainer
from pymongo.errors import OperationFailure

from services.common import metrics
from services.common.store import MAX_TRANSACTION_ATTEMPTS, Store, StoreBusy
from services.devstack.infrastructure import EmbeddedMongo, free_port

ROWS_PER_COMMIT = 1000
SEARCH_SECONDS = 30


def _embedded_store(oplog: bool):
    folder = Path(tempfile.mkdtemp(prefix="leadflow-conflicts-"))
    mongo = EmbeddedMongo(folder / "data", free_port(), folder / "secantusdb.log", oplog=oplog,
                          options=("--oplog-max-entries", "10", "--enable-test-commands")).start()
    return mongo, folder


@pytest.fixture(scope="module")
def pruning_store():
    """A SecantusDB of this module's own, with an oplog that is full from the first commits, and
    failpoints (``configureFailPoint``) allowed, so no other test sees either."""
    mongo, folder = _embedded_store(oplog=True)
    yield mongo.uri
    mongo.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def store_without_oplog():
    """The same server as Leadflow starts it (no oplog: Leadflow reads no change streams)."""
    mongo, folder = _embedded_store(oplog=False)
    yield mongo.uri
    mongo.stop()
    shutil.rmtree(folder, ignore_errors=True)


class ConflictService:
    name = "conflicts"
    store = Store()


@pytest.fixture
def store(pruning_store, infra):
    """The Store of a running container (its outbox relay included), on the pruning server."""
    prefix = f"conflicts{uuid.uuid4().hex[:6]}"
    with config.patch({"AMQP_URI": infra.amqp_uri, "MONGODB_URI": pruning_store, "MONGODB_DB_PREFIX": prefix}):
        container = ServiceContainer(ConflictService)
        container.start()
        [provider] = [d for d in container.dependencies if isinstance(d, Store)]
        yield provider
        container.stop()


def _fail_commits(client, times: int, code: int, labels=()):
    client.admin.command({"configureFailPoint": "failCommand", "mode": {"times": times} if times else "off",
                          "data": {"failCommands": ["commitTransaction"], "errorCode": code,
                                   "errorLabels": list(labels)}})


def _retries(reason: str) -> float:
    return metrics.TRANSACTION_RETRIES.labels(ConflictService.name, reason)._value.get()


def _insert_rows(tag: str):
    def work(uow):
        uow.db["rows"].insert_many([{"_id": f"{tag}-{n}", "tag": tag} for n in range(ROWS_PER_COMMIT)],
                                   session=uow.session)
        uow.publish("rows_written", {"tag": tag}, {})
        return tag
    return work


def _race_two_writers(uri: str, commits_each: int | None = None) -> tuple[list, int]:
    """Two green threads committing 1,000-row transactions until the first error (or, given
    ``commits_each``, until each has committed that many): the errors and the commits seen."""
    client = pymongo.MongoClient(uri)
    rows = client["raw"]["rows"]
    rows.insert_one({"_id": f"created-{uuid.uuid4().hex}"})
    seen, committed = [], []

    def writer(name: str):
        for number in itertools.count(1):
            if seen or (commits_each and number > commits_each):
                return
            try:
                with client.start_session() as session, session.start_transaction():
                    rows.insert_many([{"_id": f"{name}-{number}-{n}"} for n in range(ROWS_PER_COMMIT)],
                                     session=session)
                committed.append(name)
            except OperationFailure as error:
                seen.append(error)

    pool = eventlet.GreenPool()
    writers = [pool.spawn(writer, f"{name}-{uuid.uuid4().hex[:6]}") for name in ("a", "b")]
    with eventlet.Timeout(SEARCH_SECONDS, False):
        pool.waitall()
    for running in writers:
        running.kill()
    client.close()
    return seen, len(committed)


def test_two_commits_pruning_the_oplog_at_once_conflict_as_an_unlabelled_internal_error(pruning_store):
    seen, _ = _race_two_writers(pruning_store)

    assert seen, f"no conflict in {SEARCH_SECONDS} s"
    conflict = seen[0]
    assert (conflict.code, conflict.details.get("codeName")) == (1, "InternalError")
    assert not conflict.has_error_label("TransientTransactionError")


def test_without_an_oplog_the_same_writers_never_conflict(store_without_oplog):
    seen, committed = _race_two_writers(store_without_oplog, commits_each=15)

    assert seen == []
    assert committed == 30


def test_concurrent_transactions_that_conflict_are_run_again_and_each_is_stored_once(store):
    before = _retries("commit_conflict")
    tags = [f"t{n}" for n in range(6)]

    results = list(eventlet.GreenPool(3).imap(lambda tag: store.run_in_transaction(_insert_rows(tag)), tags))

    assert results == tags
    rows = store.db["rows"]
    assert {tag: rows.count_documents({"tag": tag}) for tag in tags} == {tag: ROWS_PER_COMMIT for tag in tags}
    assert _retries("commit_conflict") > before  # they did conflict, and nobody saw it


def test_a_commit_refused_as_secantusdb_refuses_it_is_retried_and_counted(store):
    _fail_commits(store.client, times=2, code=1)
    before = _retries("commit_conflict")

    assert store.run_in_transaction(_insert_rows("refused-twice")) == "refused-twice"

    assert store.db["rows"].count_documents({"tag": "refused-twice"}) == ROWS_PER_COMMIT
    assert _retries("commit_conflict") == before + 2
    # The refused attempts' events went with them: one event is waiting (nobody listens to this one).
    assert store.db["outbox"].count_documents({"events.tag": "refused-twice"}) == 1


def test_a_write_conflict_as_mongodb_labels_it_is_retried_and_counted(store):
    _fail_commits(store.client, times=1, code=112, labels=["TransientTransactionError"])
    before = _retries("write_conflict")

    store.run_in_transaction(_insert_rows("labelled"))

    assert store.db["rows"].count_documents({"tag": "labelled"}) == ROWS_PER_COMMIT
    assert _retries("write_conflict") == before + 1


def test_other_commit_errors_are_not_retried_and_store_nothing(store):
    _fail_commits(store.client, times=1, code=2)  # BadValue: a verdict, not a conflict

    with pytest.raises(OperationFailure) as raised:
        store.run_in_transaction(_insert_rows("bad-value"))

    assert raised.value.code == 2
    assert store.db["rows"].count_documents({"tag": "bad-value"}) == 0


def test_retries_are_bounded_and_the_caller_learns_the_store_stayed_busy(store):
    _fail_commits(store.client, times=MAX_TRANSACTION_ATTEMPTS, code=1)

    with pytest.raises(StoreBusy) as raised:
        store.run_in_transaction(_insert_rows("never"))

    assert raised.value.reason == "commit_conflict"
    assert raised.value.__cause__.code == 1  # the server's last answer stays attached
    assert store.db["rows"].count_documents({"tag": "never"}) == 0
    _fail_commits(store.client, times=0, code=1)


@pytest.mark.parametrize("refusal", ["stayed busy", "not retried"])
def test_a_transaction_given_up_holds_nothing_against_the_next_writer(store, pruning_store, refusal):
    """A failpoint refuses a commit without running it, so the transaction stays open on the server
    holding its writes; given up, it must not keep other writers out until the server reaps it."""
    if refusal == "stayed busy":
        _fail_commits(store.client, times=MAX_TRANSACTION_ATTEMPTS, code=112, labels=["TransientTransactionError"])
        expected = StoreBusy
    else:
        _fail_commits(store.client, times=1, code=2)
        expected = OperationFailure
    tag = f"given-up-{uuid.uuid4().hex[:6]}"

    with pytest.raises(expected):
        store.run_in_transaction(_insert_rows(tag))
    _fail_commits(store.client, times=0, code=1)

    # Another client, so surely another server session than the one the store gave up.
    other = pymongo.MongoClient(pruning_store)
    try:
        rows = other[store.db.name]["rows"]
        with other.start_session() as session, session.start_transaction():
            rows.insert_many([{"_id": f"{tag}-{n}", "tag": tag} for n in range(ROWS_PER_COMMIT)], session=session)
        assert rows.count_documents({"tag": tag}) == ROWS_PER_COMMIT
    finally:
        other.close()
