"""Test infrastructure shared by every layer.

Policy: our own infrastructure is always real — the RabbitMQ and Redis on this machine, and an
embedded SecantusDB speaking the MongoDB wire protocol, started for the session. Each session gets
its own RabbitMQ vhost, database prefix and Redis key prefix, so it never sees another run's data
(nor a running ``make run``). Nothing here mocks a broker or a store.
"""
import base64
import json
import socket
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from services.common.auth import Principal, Role, new_token, token_entry
from services.devstack.infrastructure import EmbeddedMongo, free_port

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
RABBIT_MANAGEMENT = "http://127.0.0.1:15672"


@dataclass(frozen=True)
class Infra:
    amqp_uri: str
    mongo_uri: str
    redis_uri: str
    db_prefix: str
    redis_prefix: str

    def env(self) -> dict:
        """Environment for service processes started by e2e tests and the benchmark."""
        return {"AMQP_URI": self.amqp_uri, "MONGODB_URI": self.mongo_uri, "REDIS_URI": self.redis_uri,
                "MONGODB_DB_PREFIX": self.db_prefix, "REDIS_KEY_PREFIX": self.redis_prefix}


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _management(method: str, path: str, body: dict | None = None) -> None:
    request = urllib.request.Request(f"{RABBIT_MANAGEMENT}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    request.add_header("Content-Type", "application/json")
    urllib.request.urlopen(request, timeout=10).close()


def _create_vhost(vhost: str) -> str:
    _management("PUT", f"/api/vhosts/{vhost}")
    _management("PUT", f"/api/permissions/{vhost}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    return f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}"


@pytest.fixture
def empty_broker():
    """An AMQP URI of a vhost of its own, where no queue from earlier tests is bound."""
    vhost = f"leadflow-test-{uuid.uuid4().hex[:8]}"
    yield _create_vhost(vhost)
    _management("DELETE", f"/api/vhosts/{vhost}")


@pytest.fixture(scope="session")
def infra(tmp_path_factory):
    for port, what in ((5672, "RabbitMQ"), (15672, "the RabbitMQ management plugin"), (6379, "Redis")):
        if not _reachable(port):
            pytest.fail(f"{what} is not answering on 127.0.0.1:{port}; run `make test` "
                        f"(it starts it) or `python -m services.devstack prepare-tests`", pytrace=False)
    run_id = uuid.uuid4().hex[:8]
    vhost = f"leadflow-test-{run_id}"
    amqp_uri = _create_vhost(vhost)
    data_dir = tmp_path_factory.mktemp("secantusdb")
    mongo = EmbeddedMongo(data_dir / "data", free_port(), data_dir / "secantusdb.log").start()
    redis_prefix = f"leadflow-test-{run_id}"
    yield Infra(amqp_uri=amqp_uri, mongo_uri=mongo.uri,
                redis_uri="redis://127.0.0.1:6379/0", db_prefix=f"lftest{run_id}", redis_prefix=redis_prefix)
    mongo.stop()
    _management("DELETE", f"/api/vhosts/{vhost}")
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    for key in client.scan_iter(f"{redis_prefix}:*", count=500):
        client.delete(key)


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
