"""Failures that mean our own infrastructure is unreachable for a moment, not that a request or an
event is bad: callers get UNAVAILABLE (retry), and events wait for the store instead of being
dead-lettered."""
import pymongo.errors
import redis.exceptions

OUTAGE_ERRORS = (
    pymongo.errors.ConnectionFailure,  # includes AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
