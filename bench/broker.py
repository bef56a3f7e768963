"""(i) Raw RabbitMQ: persistent publishes with confirms, and consumes, msgs/s — the baseline of every
rate that goes through the broker."""
import json
import time
import uuid

from kombu import Connection, Exchange, Producer, Queue


def bench_broker(amqp_uri: str, count: int) -> dict:
    queue_name = f"bench-{uuid.uuid4().hex[:6]}"
    body = json.dumps({"event_id": str(uuid.uuid4()), "lead": {"email": "x" * 40, "source": "web"}})
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        queue = Queue(queue_name, exchange=Exchange("", type="direct"), routing_key=queue_name, durable=True)
        producer = Producer(connection.channel())
        started = time.perf_counter()
        for _ in range(count):
            producer.publish(body, routing_key=queue_name, delivery_mode=2, declare=[queue],
                             content_type="application/json")
        published = count / (time.perf_counter() - started)
    with Connection(amqp_uri) as connection:
        received = 0
        started = time.perf_counter()

        def on_message(body, message):
            nonlocal received
            received += 1
            message.ack()
        with connection.Consumer(Queue(queue_name, durable=True), callbacks=[on_message], prefetch_count=200):
            while received < count:
                connection.drain_events(timeout=10)
        consumed = count / (time.perf_counter() - started)
        Queue(queue_name)(connection.channel()).delete()
    return {"publish_confirmed_per_s": published, "consume_per_s": consumed}
