"""Look at and replay events that kept failing (the dead-letter queue, DESIGN.md §4)."""
from kombu import Connection, Producer

from services.common.dead_letter import (ATTEMPTS_HEADER, ERROR_HEADER, HANDLER_HEADER, ORIGINAL_QUEUE_HEADER,
                                         dead_letter_queue)


def _drain(amqp_uri: str, handle) -> int:
    """Take each dead letter once, call ``handle(message)``, which says whether to keep it."""
    count = 0
    with Connection(amqp_uri) as connection:
        queue = dead_letter_queue()(connection.default_channel)
        queue.declare()
        seen = []
        while True:
            message = queue.get(no_ack=False)
            if message is None:
                break
            count += 1
            if handle(connection, message):
                seen.append(message)
            else:
                message.ack()
        # Returned to the queue only now, so the loop above sees each message once.
        for message in seen:
            message.requeue()
    return count


def _text(body) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)


def peek(amqp_uri: str) -> list[dict]:
    letters = []

    def keep(connection, message) -> bool:
        headers = message.headers or {}
        letters.append({
            "handler": headers.get(HANDLER_HEADER), "error": headers.get(ERROR_HEADER),
            "attempts": headers.get(ATTEMPTS_HEADER), "queue": headers.get(ORIGINAL_QUEUE_HEADER),
            "body": _text(message.body)[:2000]})
        return True
    _drain(amqp_uri, keep)
    return letters


def replay(amqp_uri: str) -> int:
    def send_back(connection, message) -> bool:
        headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-leadflow-")}
        Producer(connection.default_channel).publish(
            message.body, exchange="", routing_key=message.headers[ORIGINAL_QUEUE_HEADER], headers=headers,
            content_type=message.content_type, content_encoding=message.content_encoding, delivery_mode=2)
        return False
    return _drain(amqp_uri, send_back)

