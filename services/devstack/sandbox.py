"""An isolated slice of the local infrastructure for one test session or benchmark run: its own
RabbitMQ vhost, its own embedded SecantusDB (in a temporary folder), its own Redis key prefix.
Nothing it touches is visible to ``make run`` or to another run, and it cleans up after itself."""
import base64
import json
import shutil
import tempfile
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis

from services.devstack.infrastructure import EmbeddedMongo, InfrastructureError, free_port, port_open

RABBIT_MANAGEMENT = "http://127.0.0.1:15672"
REDIS_URI = "redis://127.0.0.1:6379/0"


def _management(method: str, path: str, body: dict | None = None) -> None:
    request = urllib.request.Request(f"{RABBIT_MANAGEMENT}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    request.add_header("Content-Type", "application/json")
    urllib.request.urlopen(request, timeout=10).close()


def create_vhost(vhost: str) -> str:
    """A fresh RabbitMQ vhost for guest; returns its AMQP URI."""
    _management("PUT", f"/api/vhosts/{vhost}")
    _management("PUT", f"/api/permissions/{vhost}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    return f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}"


def delete_vhost(vhost: str) -> None:
    _management("DELETE", f"/api/vhosts/{vhost}")


@dataclass(frozen=True)
class Infra:
    amqp_uri: str
    mongo_uri: str
    redis_uri: str
    db_prefix: str
    redis_prefix: str

    def env(self) -> dict:
        """Environment for service processes started against this sandbox."""
        return {"AMQP_URI": self.amqp_uri, "MONGODB_URI": self.mongo_uri, "REDIS_URI": self.redis_uri,
                "MONGODB_DB_PREFIX": self.db_prefix, "REDIS_KEY_PREFIX": self.redis_prefix}


class Sandbox:
    def __init__(self, name: str = "test"):
        self.run_id = uuid.uuid4().hex[:8]
        self.vhost = f"leadflow-{name}-{self.run_id}"
        self.redis_prefix = f"leadflow-{name}-{self.run_id}"
        self.db_prefix = f"lf{name}{self.run_id}"
        self.mongo = None
        self.folder = None

    def __enter__(self) -> Infra:
        for port, what in ((5672, "RabbitMQ"), (15672, "the RabbitMQ management plugin"), (6379, "Redis")):
            if not port_open("127.0.0.1", port):
                raise InfrastructureError(f"{what} is not answering on 127.0.0.1:{port}; "
                                          f"run `python -m services.devstack prepare-tests` (make test does)")
        amqp_uri = create_vhost(self.vhost)
        self.folder = Path(tempfile.mkdtemp(prefix="leadflow-secantusdb-"))
        self.mongo = EmbeddedMongo(self.folder / "data", free_port(), self.folder / "secantusdb.log").start()
        return Infra(amqp_uri=amqp_uri, mongo_uri=self.mongo.uri, redis_uri=REDIS_URI, db_prefix=self.db_prefix,
                     redis_prefix=self.redis_prefix)

    def __exit__(self, *exc) -> None:
        if self.mongo:
            self.mongo.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
        delete_vhost(self.vhost)
        client = redis.Redis.from_url(REDIS_URI)
        for key in client.scan_iter(f"{self.redis_prefix}:*", count=500):
            client.delete(key)
