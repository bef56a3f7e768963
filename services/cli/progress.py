"""A long import with its progress shown: the import call runs in the background while the CLI asks
the service for the import's progress (by the id it put in the header) and draws it — a bar on a
terminal, a line every few seconds in a log or a pipe."""
import sys
import time
import uuid

import grpc
from leadflow.common.v1 import common_pb2
from tqdm import tqdm

POLL_SECONDS = 0.5
LOG_LINE_SECONDS = 10.0
IMPORT_TIMEOUT_SECONDS = 3600


def new_import_id() -> str:
    return uuid.uuid4().hex


def describe(progress) -> str:
    """One line a person reads: how far, out of about how many, stored and rejected."""
    phase = common_pb2.ImportPhase.Name(progress.phase).removeprefix("IMPORT_PHASE_").lower()
    if progress.phase == common_pb2.IMPORT_PHASE_RECEIVING:
        return f"receiving the file: {progress.bytes_received / 1e6:,.1f} MB"
    if progress.phase == common_pb2.IMPORT_PHASE_READING:
        return f"reading the file ({progress.bytes_received / 1e6:,.1f} MB)"
    expected = f" of about {progress.rows_expected:,}" if progress.rows_expected >= progress.rows_read else ""
    return (f"{phase}: {progress.rows_read:,}{expected} rows read, {progress.rows_stored:,} stored, "
            f"{progress.rows_rejected:,} rejected")


class _Display:
    """A tqdm bar on a terminal; elsewhere a plain line when the phase changes and every LOG_LINE_SECONDS."""

    def __init__(self, out):
        self.out = out
        self.interactive = out.isatty()
        self.bar = tqdm(total=None, unit=" rows", file=out, dynamic_ncols=True) if self.interactive else None
        self._line_at, self._phase = 0.0, None

    def show(self, progress) -> None:
        if self.bar is not None:
            self.bar.total = max(progress.rows_expected, progress.rows_read) or None
            self.bar.update(progress.rows_read - self.bar.n)  # through update, so the rate shown is right
            self.bar.set_postfix_str(f"{progress.rows_stored:,} stored, {progress.rows_rejected:,} rejected"
                                     if progress.phase == common_pb2.IMPORT_PHASE_STORING else describe(progress),
                                     refresh=True)
            return
        now = time.monotonic()
        if progress.phase != self._phase or now - self._line_at >= LOG_LINE_SECONDS:
            print(describe(progress), file=self.out, flush=True)
            self._line_at, self._phase = now, progress.phase

    def close(self, last) -> None:
        if last is not None:
            if self.bar is not None:
                self.show(last)
            else:
                print(describe(last), file=self.out, flush=True)
        if self.bar is not None:
            self.bar.close()


def run_import(method, requests, get_progress, import_id: str, out=sys.stderr):
    """Start the import RPC ``method`` with ``requests`` (whose header carries ``import_id``), show its
    progress from ``get_progress(import_id)`` until it answers, and return its answer (or raise its
    error)."""
    call = method.future(requests, timeout=IMPORT_TIMEOUT_SECONDS)
    display, last, following = _Display(out), None, True
    try:
        while not _finished(call):
            if not following:
                continue
            try:
                last = get_progress(import_id)
            except grpc.RpcError as exc:
                # Not begun yet (the header is still on its way), or progress is unreachable for a moment:
                # the import itself goes on either way. Any other answer ends the following, not the import.
                if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                    print(f"progress unavailable ({exc.code().name}: {exc.details()}); the import goes on",
                          file=out, flush=True)
                    following = False
                continue
            display.show(last)
        if call.exception() is None:
            last = _last_progress(get_progress, import_id) or last
    finally:
        display.close(last if call.done() and call.exception() is None else None)
    return call.result()


def _finished(call) -> bool:
    try:
        call.result(timeout=POLL_SECONDS)
    except grpc.FutureTimeoutError:
        return False
    except grpc.RpcError:
        pass
    return True


def _last_progress(get_progress, import_id: str):
    try:
        return get_progress(import_id)
    except grpc.RpcError:
        return None
