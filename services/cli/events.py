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


def tail(stub, metadata, request: events_pb2.SubscribeRequest, out, limit: int = 0, idle_exit: float = 0) -> int:
    """Print events as they are stored; asks for more whenever what it asked for has come. Stops after
    ``limit`` events, or once none came for ``idle_exit`` seconds (0: never). Returns how many it printed."""
    asks: queue.Queue = queue.Queue()
    asks.put(request)

    def requests():
        while (ask := asks.get()) is not None:
            yield ask

    call = stub.Subscribe(requests(), metadata=metadata)
    printed, last_seen, stopped = 0, [time.monotonic()], threading.Event()

    def watch_idle():
        while not stopped.wait(0.2):
            if time.monotonic() - last_seen[0] >= idle_exit:
                call.cancel()
                return

    if idle_exit > 0:
        threading.Thread(target=watch_idle, daemon=True).start()
    try:
        for response in call:
            for event in response.events:
                print(line(event), file=out, flush=True)
                printed += 1
                last_seen[0] = time.monotonic()
                if limit and printed >= limit:
                    return printed
            if response.events and response.pending_num_requested == 0:
                asks.put(events_pb2.SubscribeRequest(num_requested=ASK))
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.CANCELLED:
            raise
    finally:
        stopped.set()
        asks.put(None)
        call.cancel()
    return printed
