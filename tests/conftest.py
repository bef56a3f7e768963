"""Test infrastructure shared by every layer.

Policy: our own infrastructure is always real — the RabbitMQ and Redis on this machine, and an
embedded SecantusDB speaking the MongoDB wire protocol, started for the session. Each session gets
its own RabbitMQ vhost, database prefix and Redis key prefix, so it never sees another run's data
(nor a running ``make run``). Nothing here mocks a broker or a store.
"""
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.common.auth import Principal, Role, new_token, token_entry
from services.common.compute import limit_native_threads
from services.devstack.infrastructure import InfrastructureError
from services.devstack.sandbox import Sandbox, create_vhost, delete_vhost

# Before the test modules load numpy and scikit-learn, as every service process does at start
# (services.common.runner): code the tests run in-process then uses the cores as it does in production.
limit_native_threads()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def infra():
    try:
        with Sandbox("test") as sandbox:
            yield sandbox
    except InfrastructureError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def empty_broker():
    """An AMQP URI of a vhost of its own, where no queue from earlier tests is bound."""
    vhost = f"leadflow-test-{uuid.uuid4().hex[:8]}"
    yield create_vhost(vhost)
    delete_vhost(vhost)


PRINCIPALS = {
    "admin": Principal("admin", Role.ADMIN, "hq"),
    "integration": Principal("crm-sync", Role.INTEGRATION, "hq"),
    "manager": Principal("manager.wang", Role.MANAGER, "team-a"),
    "rep": Principal("rep.one", Role.REP, "team-a"),
    "other_rep": Principal("rep.two", Role.REP, "team-a"),
    "outsider_rep": Principal("rep.far", Role.REP, "team-b"),
}


@dataclass(frozen=True)
class Tokens:
    by_name: dict

    def __getitem__(self, name: str) -> str:
        return self.by_name[name]

    @property
    def table(self) -> str:
        return ",".join(token_entry(PRINCIPALS[name], token) for name, token in self.by_name.items())


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    return Tokens({name: new_token() for name in PRINCIPALS})


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("the public CRM data sets in ../shared/data are not present in this checkout")
    return SHARED_DATA
