"""CPU work through ``off_the_hub`` leaves the service's event loop free: other green threads (health
probes, AMQP heartbeats, requests) keep running while it computes, and its result or error comes back."""
import os
import subprocess
import sys
import time

import eventlet
import pytest

from services.common.compute import NATIVE_THREAD_VARIABLES, in_slices, off_the_hub


def _busy(seconds: float) -> int:
    """Pure-Python CPU work that never yields to eventlet."""
    end, loops = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        loops += 1
    return loops


def _heartbeats_during(run) -> int:
    beats = []

    def heartbeat():
        while True:
            beats.append(1)
            eventlet.sleep(0.01)
    beating = eventlet.spawn(heartbeat)
    eventlet.sleep(0)
    before = len(beats)
    run()
    during = len(beats) - before
    beating.kill()
    return during


def test_other_green_threads_run_while_work_is_off_the_hub():
    assert _heartbeats_during(lambda: off_the_hub(_busy, 0.5)) >= 10
    assert _heartbeats_during(lambda: _busy(0.5)) == 0  # the same work on the hub starves them


def test_the_result_and_the_error_come_back_to_the_caller():
    assert off_the_hub(sorted, [3, 1, 2], reverse=True) == [3, 2, 1]
    with pytest.raises(ZeroDivisionError):
        off_the_hub(lambda: 1 / 0)


def test_a_service_process_uses_one_native_thread_unless_the_operator_chose_otherwise():
    # What a service process started by the runner sees, before any service module loads numpy.
    probe = "import os, services.common.runner; print(os.environ['OMP_NUM_THREADS'])"
    environment = {k: v for k, v in os.environ.items() if k not in NATIVE_THREAD_VARIABLES}

    def seen(**chosen) -> str:
        return subprocess.run([sys.executable, "-c", probe], env={**environment, **chosen}, capture_output=True,
                              text=True, check=True).stdout.strip()
    assert (seen(), seen(OMP_NUM_THREADS="4")) == ("1", "4")


def test_a_loop_in_slices_lets_other_green_threads_run_between_slices():
    seen_at = []
    items = []

    def probe():
        while True:
            seen_at.append(len(items))
            eventlet.sleep(0)
    probing = eventlet.spawn(probe)
    try:
        for item in in_slices(range(120), size=50):
            _busy(0.001)  # a row's work, never yielding on its own
            items.append(item)
    finally:
        probing.kill()
    assert items == list(range(120))
    assert seen_at == [50, 100]  # the probe ran after each full slice, and only then
