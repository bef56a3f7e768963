"""Redis connection for fast shared state (counters, locks, rate limits): connects in setup(),
namespaces every key under the service's prefix so installations and test runs never collide."""
import redis
from nameko import config
from nameko.extensions import DependencyProvider


class RedisKeys:
    """A Redis client plus the service's key prefix."""

    def __init__(self, client: redis.Redis, prefix: str):
        self.client = client
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))


def connect_redis(service_name: str) -> RedisKeys:
    client = redis.Redis.from_url(config["REDIS_URI"], socket_timeout=5, socket_connect_timeout=5,
                                  decode_responses=True)
    return RedisKeys(client, f"{config['REDIS_KEY_PREFIX']}:{service_name}")


class RedisProvider(DependencyProvider):
    """Subclasses override ``get_dependency`` to wrap ``self.keys`` in a domain-shaped interface."""

    def setup(self):
        self.keys = connect_redis(self.container.service_name)

    def stop(self):
        self.keys.client.close()

    def kill(self):
        self.stop()

    def check_ready(self) -> None:
        self.keys.client.ping()

    def get_dependency(self, worker_ctx):
        return self.keys
