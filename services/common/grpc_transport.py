"""Wake nameko-grpc's connection loop as soon as there is something to send.

Why this exists
---------------
nameko-grpc 1.3.0 runs one loop per HTTP/2 connection
(``nameko_grpc.connection.ConnectionManager.run_forever``)::

    on_iteration()                    # move queued stream data into h2
    sock.sendall(conn.data_to_send())
    select([sock], [], [], 0.01)      # SELECT_TIMEOUT

Responses are produced by worker green threads, which only put messages on the
stream's queue; nothing tells the loop. So a response that is ready a few
microseconds after the loop went into ``select`` waits for the 10 ms timeout
before ``on_iteration`` picks it up. The client side (``GrpcProxy`` /
``Client``, i.e. service-to-service calls) has the same wait for the request:
``send_request`` only queues it. A service-to-service call pays both.

Measured on loopback (2 vCPUs, client and server on the same host), unary echo,
500 sequential calls p50 / p99, and throughput with 16 concurrent callers:

=================================  ====================  ===================
path                               nameko-grpc 1.3.0     with ``install()``
=================================  ====================  ===================
grpcio client -> nameko server     12.0 / 13.7 ms        0.87 / 1.8 ms
                                   1,400-1,900 req/s     2,100-2,600 req/s
GrpcProxy -> nameko server         23.4 / 25.8 ms        1.3 / 3.3 ms
(``install()`` in both services)   ~480 req/s            ~1,400 req/s
plain grpcio -> grpcio server      0.63 / 0.82 ms, ~3,400 req/s (reference)
=================================  ====================  ===================

What ``install()`` changes
--------------------------
Only the two names the connection pools instantiate,
``nameko_grpc.channel.ServerConnectionManager`` and
``nameko_grpc.channel.ClientConnectionManager``, are rebound to subclasses
defined here. The original classes are untouched. The subclasses:

* add a wakeup socketpair to the loop's ``select`` set: two fds per
  connection, created with the connection object and closed when its loop
  exits (before ``stopped`` is set);
* give every outbound stream (server: response stream; client: request
  stream) a queue that writes to the wakeup socket on ``put``, which covers
  ``populate``, ``close`` and ``close(error)`` (deadline and error paths)
  from any thread;
* wake the loop from ``send_request`` and ``stop``;
* set ``TCP_NODELAY``. Once woken promptly, the client writes the request
  HEADERS and DATA frames in two small ``sendall`` calls, and Nagle holds the
  second one back until the first is ACKed, which the server delays: without
  it a GrpcProxy call measured 44 ms instead of 1.3 ms (the 10 ms batching
  used to hide this). Server side it made no measurable difference.

``SELECT_TIMEOUT`` is deliberately left at 10 ms as a safety net: the
graceful-shutdown check still polls (a receive stream becomes "exhausted"
when a worker consumes it, and nothing wakes the loop for that).

Ordering
--------
``install()`` must run before the ``GrpcServer`` / ``GrpcProxy`` open
connections (e.g. at import time of the service module); connections that are
already open keep the old behaviour. It does not matter whether it runs before
or after ``eventlet.monkey_patch()``: ``socket.socketpair``, ``select.select``
and the queue's locks are looked up when a connection starts, so they are the
green versions under ``nameko run`` / ``nameko test`` and the native ones for
the threaded ``nameko_grpc.client.Client``. (Importing this module imports
nameko_grpc, which binds ``threading.Event`` at import time, so as for any
nameko_grpc import, do it after monkey patching; ``nameko run`` and
``nameko test`` patch first.)

The run loop below is a copy of the 1.3.0 one with the wakeup added, which is
why ``install()`` refuses any other nameko-grpc version: re-check
``ConnectionManager.run_forever`` and the places that enqueue outbound data,
then bump ``SUPPORTED_NAMEKO_GRPC``.
"""
import select
import socket
from importlib.metadata import version as distribution_version

from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    ResponseReceived,
    SettingsAcknowledged,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from nameko_grpc import channel as grpc_channel
from nameko_grpc import connection as grpc_connection
from nameko_grpc import streams as grpc_streams


__all__ = ["install"]

SUPPORTED_NAMEKO_GRPC = "1.3.0"

# Same order as the isinstance chain in 1.3.0's run_forever.
_EVENT_HANDLERS = (
    (RequestReceived, "request_received"),
    (ResponseReceived, "response_received"),
    (DataReceived, "data_received"),
    (StreamEnded, "stream_ended"),
    (StreamReset, "stream_reset"),
    (WindowUpdated, "window_updated"),
    (RemoteSettingsChanged, "settings_changed"),
    (SettingsAcknowledged, "settings_acknowledged"),
    (TrailersReceived, "trailers_received"),
    (ConnectionTerminated, "connection_terminated"),
)


class _Wakeup:
    """A socketpair whose read end is readable while a wakeup is pending.

    A socketpair rather than os.pipe: a closed socket object refuses further
    sends itself, so a late ``wake()`` from a worker can never write into a
    recycled fd number.
    """

    def __init__(self):
        self._reader, self._writer = socket.socketpair()
        # Non-blocking so neither side ever parks a green thread: a full
        # buffer already means "readable", and draining stops at EAGAIN.
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._pending = False
        self._closed = False

    def fileno(self):
        return self._reader.fileno()

    def wake(self):
        # One byte per loop iteration is enough; a server-streaming response
        # enqueues many messages and should not cost a syscall each.
        if self._pending or self._closed:
            return
        self._pending = True
        try:
            self._writer.send(b"\0")
        except OSError:
            pass  # buffer full (already readable) or closed (loop is gone)

    def consume(self):
        # Drain before clearing the flag: a wake() racing with this either
        # sees the flag still set, and its data is then enqueued before the
        # on_iteration() that follows, or sees it cleared and writes a byte.
        try:
            while self._reader.recv(4096):
                pass
        except OSError:
            pass
        self._pending = False

    def close(self):
        self._closed = True
        self._reader.close()
        self._writer.close()


class _WakingQueue(grpc_streams.Queue):
    """Stream queue that wakes the connection loop after every put."""

    def __init__(self, wake):
        super().__init__()
        self._wake = wake

    def put(self, item, block=True, timeout=None):
        super().put(item, block, timeout)
        self._wake()


class _WakeupMixin:
    """Run loop of nameko-grpc 1.3.0 plus a wakeup fd in the select set.

    Subclasses set ``self._wakeup`` in ``__init__``: the pools hand a client
    connection out for ``send_request`` before its loop has started, and the
    streams' queues must hold the ``_Wakeup`` itself rather than the
    connection, or connection -> stream -> queue -> connection would be a
    cycle, keeping finished connections (and the pools' weakrefs to them)
    alive until the next GC pass.
    """

    def _wake(self):
        self._wakeup.wake()

    def _set_nodelay(self):
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not a TCP socket (e.g. an AF_UNIX socketpair in tests)

    def run_forever(self):
        grpc_connection.log.debug(f"connection initiated {self}")
        self._set_nodelay()
        self.conn.initiate_connection()

        with self.cleanup_on_exit():
            try:
                self._loop()
            finally:
                # Before cleanup_on_exit sets `stopped`, so whoever waits in
                # stop() never sees a finished connection still holding fds.
                # Late wake()s from workers are no-ops from here on.
                self._wakeup.close()

    def _loop(self):
        wakeup = self._wakeup
        while self.run:
            self.on_iteration()

            if not self.run:
                break

            self.sock.sendall(self.conn.data_to_send())
            # Module attributes looked up per call: the green select under
            # eventlet, and a SELECT_TIMEOUT that tests can patch.
            readable, _, _ = select.select(
                [self.sock, wakeup], [], [], grpc_connection.SELECT_TIMEOUT
            )
            if wakeup in readable:
                wakeup.consume()
            if self.sock not in readable:
                continue

            data = self.sock.recv(65535)
            if not data:
                break

            for event in self.conn.receive_data(data):
                for event_type, handler in _EVENT_HANDLERS:
                    if isinstance(event, event_type):
                        getattr(self, handler)(event)
                        break

    def stop(self):
        self.conn.close_connection()
        self.terminating = True
        # The GOAWAY just queued in h2 and the terminating check both need a
        # loop iteration; don't make stop() wait for the select timeout.
        self._wake()
        grpc_connection.log.debug("waiting for connection to terminate (Timeout 5s)")
        self.stopped.wait(5)


class WakingServerConnectionManager(
    _WakeupMixin, grpc_connection.ServerConnectionManager
):
    def __init__(self, sock, handle_request):
        wakeup = _Wakeup()

        def handle_request_waking(request_stream, response_stream):
            # request_received() creates the response stream and hands it
            # straight here; the worker that fills it is spawned below, so
            # the queue is still the fresh, empty one.
            response_stream.queue = _WakingQueue(wakeup.wake)
            return handle_request(request_stream, response_stream)

        super().__init__(sock, handle_request_waking)
        self._wakeup = wakeup


class WakingClientConnectionManager(
    _WakeupMixin, grpc_connection.ClientConnectionManager
):
    def __init__(self, sock):
        super().__init__(sock)
        self._wakeup = _Wakeup()

    def send_request(self, request_headers):
        request_stream, response_stream = super().send_request(request_headers)
        # The caller spawns the thread that populates request_stream only
        # after we return, so the queue is still the fresh, empty one.
        request_stream.queue = _WakingQueue(self._wakeup.wake)
        # The HEADERS frame (pending_requests) is only sent from the loop.
        self._wake()
        return request_stream, response_stream


def install():
    """Make nameko-grpc send responses and requests as soon as they are queued.

    Idempotent. Raises RuntimeError if the installed nameko-grpc is not the
    version this adapter was written against.
    """
    installed = distribution_version("nameko-grpc")
    if installed != SUPPORTED_NAMEKO_GRPC:
        raise RuntimeError(
            f"services.common.grpc_transport copies nameko-grpc "
            f"{SUPPORTED_NAMEKO_GRPC}'s connection loop, but {installed} is "
            f"installed; re-check nameko_grpc/connection.py and update this module."
        )

    # Checked by class rather than a module flag, so that a test restoring
    # the original names (monkeypatch) gets a real re-install next time.
    if not issubclass(grpc_channel.ServerConnectionManager, _WakeupMixin):
        grpc_channel.ServerConnectionManager = WakingServerConnectionManager
    if not issubclass(grpc_channel.ClientConnectionManager, _WakeupMixin):
        grpc_channel.ClientConnectionManager = WakingClientConnectionManager
