"""A background consumer (reporting's) gives the store back between its batches: after a batch that
took t seconds it starts the next only BACKGROUND_EVENT_YIELD × t later, so a burst of leads reaches
reps first; every event is still handled and acknowledged once."""
import time

import eventlet
from nameko import config
from nameko.containers import ServiceContainer

from services.common.messaging import event_handler
from tests.support import new_event, wait_until

WORK_SECONDS = 0.3


class _Consumers:
    """Two consumers of the same kind of event, one in the background, each a batch of one at a time."""
    name = "background_probe"
    started = {"background": [], "foreground": []}

    def _work(self, which: str, events) -> list:
        self.started[which].append(time.monotonic())
        eventlet.sleep(WORK_SECONDS)  # a batch that keeps the store busy this long
        return [True for _ in events]

    @event_handler("capture", "background_probe_ping", background=True)
    def in_background(self, events):
        return self._work("background", events)

    @event_handler("capture", "background_probe_ping")
    def in_foreground(self, events):
        return self._work("foreground", events)


def test_a_background_consumer_waits_in_proportion_to_its_batch_and_handles_every_event(infra, publish):
    _Consumers.started = {"background": [], "foreground": []}
    with config.patch({"AMQP_URI": infra.amqp_uri, "EVENT_BATCH_SIZE": 1, "BACKGROUND_EVENT_YIELD": 2,
                       "EVENT_MAX_ATTEMPTS": 3}):
        container = ServiceContainer(_Consumers)
        container.start()
        try:
            for _ in range(3):
                publish("capture", new_event("background_probe_ping", {"lead_id": "probe"}))
            assert wait_until(lambda: len(_Consumers.started["background"]) == 3
                              and len(_Consumers.started["foreground"]) == 3, timeout=15)
        finally:
            container.stop()
    background, foreground = _Consumers.started["background"], _Consumers.started["foreground"]
    # Each background batch starts after the previous one's work and twice that again.
    gaps = [later - earlier for earlier, later in zip(background, background[1:], strict=False)]
    assert all(gap >= 3 * WORK_SECONDS - 0.02 for gap in gaps), gaps
    # The foreground consumer of the same events goes on as soon as a batch ends.
    assert foreground[-1] - foreground[0] < background[-1] - background[0]
