"""CPU work in a service without stalling it.

A service is one eventlet hub: while Python code runs on it, nothing else does — no health probe,
no AMQP heartbeat, no other request. Two rules keep it answering:

* work that takes more than a few milliseconds at once (training a model, scoring a batch of
  leads, OCR, report maths over a whole collection) runs in a native thread with ``off_the_hub``;
* a loop of small steps that must stay on the hub (the rows of an import, read and checked, then
  matched against stored leads inside a transaction) lets the hub go between slices: ``in_slices``;
* native libraries use one thread per process (``limit_native_threads``). scikit-learn's OpenMP
  pool wakes, spins and sleeps a thread per core around every call: one prediction for one lead
  took 35–45 ms with it on a two-core machine and ~5 ms without it, and the spinning threads took
  the core the hub needed. Leadflow scales by replicas, not by threads inside one.
"""
import os

import eventlet
from eventlet import tpool
from threadpoolctl import threadpool_limits

# Rows of an import take 0.5–2 ms each to read, check and match: a slice of 50 holds the hub for well under
# the 100 ms a health probe can wait without anyone noticing, even on a busy machine.
SLICE = 50

NATIVE_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_native_threads() -> None:
    """One thread for OpenMP and BLAS, unless the operator chose otherwise. Must run before numpy or
    scikit-learn is first imported: the libraries read these variables once, when they load."""
    for variable in NATIVE_THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")


def off_the_hub(function, *args, **kwargs):
    """``function(*args, **kwargs)`` in a native thread while the hub goes on serving; its result or
    its exception comes back here.

    Inside the thread OpenMP is held to one thread whatever the environment says: scikit-learn
    would otherwise start joblib threads, and under eventlet those are green threads bound to a
    hub that never runs in a native thread, so the work deadlocks now and then."""
    def run():
        with threadpool_limits(limits=1, user_api="openmp"):
            return function(*args, **kwargs)
    return tpool.execute(run)


def in_slices(items, size: int = SLICE):
    """``items`` one by one, letting the hub serve others (health probes, heartbeats, requests) after
    every ``size`` of them: a 500-row batch then never holds the hub for the whole batch."""
    for count, item in enumerate(items, start=1):
        yield item
        if count % size == 0:
            eventlet.sleep(0)
