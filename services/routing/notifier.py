"""Routing's notifier: every ``notification_requested`` is logged (what a mail or chat integration
reads) and, when the team has a webhook, posted there as JSON, signed when a secret is configured."""
import hashlib
import hmac
import json
import logging

from nameko import config

from services.common import metrics, outbound

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Leadflow-Signature"
TIMEOUT_SECONDS = 5


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(event: dict) -> None:
    recipients = ", ".join(r.get("email") or r.get("rep_id", "") for r in event.get("recipients", []))
    log.info("notify %s [%s]: %s", recipients or "(nobody)", event["kind"], event["message"],
             extra={"lead_id": event.get("lead_id", ""), "notification_kind": event["kind"]})
    metrics.NOTIFICATIONS.labels(event["kind"], "log").inc()
    url = event.get("webhook_url")
    if not url:
        return
    body = json.dumps({key: event.get(key) for key in (
        "event_id", "kind", "lead_id", "task_id", "team", "recipients", "message", "occurred_at")}).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Leadflow-Notifier"}
    secret = config.get("NOTIFY_WEBHOOK_SECRET", "")
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    # A failing webhook raises: the event handler retries with backoff, then dead-letters it.
    outbound.post(url, body, headers, TIMEOUT_SECONDS)
    metrics.NOTIFICATIONS.labels(event["kind"], "webhook").inc()
