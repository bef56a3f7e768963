"""Per-address rate limits shared by every replica, in Redis (fixed one-minute windows)."""
import time

from services.common.http import RateLimited
from services.common.redis_store import RedisProvider


class RateLimiter:
    WINDOW_SECONDS = 60

    def __init__(self, keys):
        self.keys = keys

    def hit(self, bucket: str, address: str, limit_per_minute: int) -> None:
        """Count one request; raise RateLimited (429, Retry-After) past the limit. The counter and
        its expiry are set in one round trip, so a crash cannot leave a counter that never expires."""
        window = int(time.time() // self.WINDOW_SECONDS)
        key = self.keys.key("ratelimit", bucket, address, str(window))
        pipeline = self.keys.client.pipeline()
        pipeline.incr(key)
        pipeline.expire(key, self.WINDOW_SECONDS + 1, nx=True)
        count, _ = pipeline.execute()
        if count > limit_per_minute:
            retry_after = max(1, int(self.WINDOW_SECONDS - time.time() % self.WINDOW_SECONDS) + 1)
            raise RateLimited(retry_after)


class RateLimits(RedisProvider):
    def get_dependency(self, worker_ctx):
        return RateLimiter(self.keys)
