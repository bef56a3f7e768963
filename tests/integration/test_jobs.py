"""Exclusive work on the real store: while one holder runs it no one else does, on any replica, and a
holder that died frees it once its lease lapses."""
import uuid
from datetime import timedelta

import pymongo
import pytest

from services.common.errors import FailedPrecondition
from services.common.jobs import exclusive


@pytest.fixture
def holds(infra):
    client = pymongo.MongoClient(infra.mongo_uri)
    yield client[f"{infra.db_prefix}jobs"][f"holds{uuid.uuid4().hex[:6]}"]
    client.close()


def test_while_one_holder_runs_the_work_a_second_is_refused_naming_the_first(holds):
    with exclusive(holds, "training", "win-model training", "ada", timedelta(minutes=5)):
        with pytest.raises(FailedPrecondition) as refused:
            with exclusive(holds, "training", "win-model training", "bob", timedelta(minutes=5)):
                pytest.fail("ran beside the first holder")
        assert "win-model training is already running (started by ada" in str(refused.value)
    with exclusive(holds, "training", "win-model training", "bob", timedelta(minutes=5)):
        pass  # free again once the first is done, even after it failed
    with pytest.raises(RuntimeError), exclusive(holds, "training", "win-model training", "bob", timedelta(minutes=5)):
        raise RuntimeError("training failed")
    with exclusive(holds, "training", "win-model training", "cy", timedelta(minutes=5)):
        pass


def test_a_hold_whose_holder_died_lapses_with_its_lease(holds):
    dead = exclusive(holds, "training", "win-model training", "ada", timedelta(seconds=-1))
    dead.__enter__()  # and never leaves: the replica was killed
    with exclusive(holds, "training", "win-model training", "bob", timedelta(minutes=5)):
        assert holds.find_one({"_id": "training"})["holder"] == "bob"
