"""``leadflow events``: follow the event stream from the command line, one JSON object per line."""
import json
import queue
import threading
import time

import grpc
from leadflow.events.v1 import events_pb2

ASK = 100  # events asked for at a time
PRESETS = {"latest": events_pb2.REPLAY_PRESET_LATEST, "earliest": events_pb2.REPLAY_PRESET_EARLIEST}
SUBJECTS = {"": events_pb2.SUBJECT_TYPE_UNSPECIFIED, "lead": events_pb2.SUBJECT_TYPE_LEAD,
            "opportunity": events_pb2.SUBJECT_TYPE_OPPORTUNITY, "account": events_pb2.SUBJECT_TYPE_ACCOUNT}


def first_request(start: str, types: list[str], subject: str, subject_id: str) -> events_pb2.SubscribeRequest:
    """``start``: latest, earliest, or the last position handled (resume after it)."""
    request = events_pb2.SubscribeRequest(num_requested=ASK, event_types=types, subject_type=SUBJECTS[subject],
                                          subject_id=subject_id)
    if start in PRESETS:
        request.replay_preset = PRESETS[start]
    elif start.isdigit():
        request.replay_preset, request.replay_position = events_pb2.REPLAY_PRESET_CUSTOM, int(start)
    else:
        raise ValueError(f"--from must be latest, earliest or a position, not {start!r}")
    return request


def line(event: events_pb2.StreamEvent) -> str:
    return json.dumps({"position": event.position, "event_type": event.event_type,
                       "source_service": event.source_service, "event": json.loads(event.payload_json)},
                      ensure_ascii=False)


class Follower:
    """One Subscribe call that asks for ``ask`` more events whenever what it asked for has come; any
    thread may ``close`` it (the responses then just end)."""

    def __init__(self, stub, metadata, first: events_pb2.SubscribeRequest, ask: int = ASK):
        self._asks: queue.Queue = queue.Queue()
        self._asks.put(first)
        self._ask = ask
        self.call = stub.Subscribe(self._requests(), metadata=metadata)

    def _requests(self):
        while (ask := self._asks.get()) is not None:
            yield ask

    def responses(self):
        try:
            for response in self.call:
                yield response
                if response.events and response.pending_num_requested == 0:
                    self._asks.put(events_pb2.SubscribeRequest(num_requested=self._ask))
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                raise

    def close(self) -> None:
        self._asks.put(None)
        self.call.cancel()


def tail(stub, metadata, request: events_pb2.SubscribeRequest, out, limit: int = 0, idle_exit: float = 0) -> int:
    """Print events as they are stored. Stops after ``limit`` events, or once none came for
    ``idle_exit`` seconds (0: never). Returns how many it printed."""
    follower = Follower(stub, metadata, request)
    printed, last_seen, stopped = 0, [time.monotonic()], threading.Event()

    def watch_idle():
        while not stopped.wait(0.2):
            if time.monotonic() - last_seen[0] >= idle_exit:
                follower.close()
                return

    if idle_exit > 0:
        threading.Thread(target=watch_idle, daemon=True).start()
    try:
        for response in follower.responses():
            for event in response.events:
                print(line(event), file=out, flush=True)
                printed += 1
                last_seen[0] = time.monotonic()
                if limit and printed >= limit:
                    return printed
    finally:
        stopped.set()
        follower.close()
    return printed
