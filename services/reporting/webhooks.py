"""Webhook subscriptions to the event stream, pure: what a subscription may say, how long to wait
before trying a failed delivery again, and what a delivery looks like on the wire."""
import json
import re
import secrets
from dataclasses import dataclass

from services.common.errors import Validator
from services.common.event_catalogue import EVENT_TYPES
from services.common.webhook_signing import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_of

EVENT_HEADER = "X-Leadflow-Event"
MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 500
MAX_BACKOFF_SECONDS = 3600.0
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class WebhookSpec:
    subscription_id: str
    url: str
    event_types: tuple[str, ...]
    description: str


def checked_subscription(subscription_id: str, url: str, event_types: list[str], description: str) -> WebhookSpec:
    check = Validator()
    check.check(bool(_ID.match(subscription_id)), "subscription.subscription_id",
                "must be 1-64 letters, digits, '-' or '_'")
    url = url.strip()
    if check.required(url, "subscription.url"):
        check.check(url.startswith(("https://", "http://")), "subscription.url", "must start with https:// or http://")
        check.max_length(url, MAX_URL_LENGTH, "subscription.url")
    check.check(bool(event_types), "subscription.event_types", "needs at least one event type (GetEventTypes)")
    for index, event_type in enumerate(event_types):
        check.check(event_type in EVENT_TYPES, f"subscription.event_types[{index}]",
                    f"{event_type!r} is not an event type on the stream (GetEventTypes lists them)")
    check.max_length(description, MAX_DESCRIPTION_LENGTH, "subscription.description")
    check.raise_if_invalid()
    return WebhookSpec(subscription_id, url, tuple(dict.fromkeys(event_types)), description.strip())


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def backoff_seconds(failed_attempts: int, first_retry_seconds: float) -> float:
    """Wait before the next attempt after ``failed_attempts`` failures: doubling from the first retry,
    at most an hour."""
    return min(first_retry_seconds * 2 ** max(0, failed_attempts - 1), MAX_BACKOFF_SECONDS)


def delivery(event: dict, secret: str, now: float) -> tuple[bytes, dict]:
    """The body and headers of one event's POST, signed as capture's incoming webhooks are."""
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    timestamp = str(int(now))
    return body, {"Content-Type": "application/json", "User-Agent": "Leadflow-Webhooks",
                  TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature_of(secret.encode(), timestamp, body),
                  DELIVERY_HEADER: event["event_id"], EVENT_HEADER: event["event_type"]}
