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
* server side only, bound the size of a request message (next section).

``SELECT_TIMEOUT`` is deliberately left at 10 ms as a safety net: the
graceful-shutdown check still polls (a receive stream becomes "exhausted"
when a worker consumes it, and nothing wakes the loop for that).

Request size limit
------------------
nameko-grpc's ``ReceiveStream`` buffers a request message of whatever length
its 5-byte gRPC header announces, so one call could make a service hold
hundreds of MB. Server connections here give every request a
``_BoundedReceiveStream`` instead, limited by the nameko config key
``GRPC_MAX_RECEIVE_MESSAGE_BYTES`` (default 4 MiB, grpcio's default; read when
a connection is created, checked by ``install()``). As soon as the header of a
message announcing more has arrived, the call is refused with
RESOURCE_EXHAUSTED "Received message larger than max (<announced> vs.
<limit>)", grpcio's wording, and nothing more of that stream is buffered:

* the request stream drops what it buffered and closes with that error, so
  whoever reads the request gets it. For a unary request (all of Leadflow's
  methods) the entrypoints spawn no worker: ``next(request)`` raises, and
  their "could not deserialize" handling (``GrpcError.from_exception``)
  passes a ``GrpcError`` through unchanged, so the status stays
  RESOURCE_EXHAUSTED (which is also why the error must be a plain
  ``GrpcError``: that pass-through is looked up by exact type). A
  streaming-request method's worker gets the error when it iterates;
* the connection closes the response stream with the same error itself,
  through the waking queue, so the answer is sent whatever the entrypoint
  does with the request (and even if its thread has not run yet);
* once the trailers are out, it resets the stream with NO_ERROR, which tells
  a client to stop uploading the rest (RFC 9113 section 8.1). grpcio stops on
  the trailers alone, but nameko-grpc's own client (``GrpcProxy``) does not:
  without the reset it sent all of a 50 MB request (and its next call on the
  connection queued behind it), with it the server saw 49 kB. DATA still in
  flight is discarded and its flow-control credit returned, by us until the
  reset and by h2 after it, so the connection's window is not eaten up and
  its other streams keep working.

Hook: ``request_received`` creates and registers the streams from the HEADERS
frame and hands them to ``handle_request`` before any other event of the
connection is processed. The wrapper this module already puts there swaps the
request stream for the bounded one at that point: no DATA can have been
written to it yet, and the entrypoint and deadline threads nameko's
``GrpcServer.handle_request`` spawns only ever see the bounded stream. Nothing
of ``request_received`` or of ``ReceiveStream.write``'s framing loop is copied.

The limit is on the message as sent, i.e. the compressed size for a
compressed message; ``ReceiveStream.consume`` decompresses without a bound.

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

The run loop below is a copy of the 1.3.0 one with the wakeup added, and the
size limit relies on 1.3.0 internals (``request_received`` calling
``handle_request`` before any DATA, ``ReceiveStream.write`` keeping its
``ByteBuffer`` at a message boundary, ``data_received`` acknowledging flow
control), which is why ``install()`` refuses any other nameko-grpc version:
re-check ``ConnectionManager.run_forever``, the places that enqueue outbound
data and those internals, then bump ``SUPPORTED_NAMEKO_GRPC``.
"""
import logging
import select
import socket
import struct
from importlib.metadata import version as distribution_version

from grpc import StatusCode
from h2.errors import ErrorCodes
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
from h2.exceptions import StreamClosedError
from nameko import config
from nameko_grpc import channel as grpc_channel
from nameko_grpc import connection as grpc_connection
from nameko_grpc import streams as grpc_streams
from nameko_grpc.errors import GrpcError


__all__ = ["install"]

log = logging.getLogger(__name__)

SUPPORTED_NAMEKO_GRPC = "1.3.0"

MAX_RECEIVE_MESSAGE_CONFIG_KEY = "GRPC_MAX_RECEIVE_MESSAGE_BYTES"
DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 4 * 1024 * 1024  # grpcio's default

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


def max_receive_message_bytes():
    """The request message size limit from nameko config (default: grpcio's 4 MiB)."""
    value = config.get(MAX_RECEIVE_MESSAGE_CONFIG_KEY)
    if value is None:
        return DEFAULT_MAX_RECEIVE_MESSAGE_BYTES
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"{MAX_RECEIVE_MESSAGE_CONFIG_KEY} must be a number of bytes >= 0, not {value!r}"
        )
    return value


class _BoundedReceiveStream(grpc_streams.ReceiveStream):
    """Request stream that refuses a message as soon as its header announces
    more than ``max_message_bytes``.

    Built on 1.3.0's ``ReceiveStream.write``, which cuts every complete message
    off the front of its buffer, so the buffer always starts at a message
    header; and which, called with ``b""``, runs just its framing loop over
    what is buffered. ``write`` below therefore appends the data, checks the
    header of every message now in the buffer (walking from one header to the
    next, without copying the buffer), and only then lets that loop queue the
    complete ones. A message whose header announces too much is refused before
    the loop could wait for the rest of it.

    On refusal the messages before it (streaming requests) are still
    delivered, the buffer is emptied, and the stream closes with the error:
    a reader gets it after those messages, and every later ``write`` is
    dropped (``closed``). ``refused`` tells the connection to answer the call.
    """

    def __init__(self, stream_id, max_message_bytes):
        super().__init__(stream_id)
        self.max_message_bytes = max_message_bytes
        self.refused = None  # the GrpcError, once a header announced too much

    @classmethod
    def replacing(cls, stream, max_message_bytes):
        """A bounded stream in place of a fresh one that has only got its headers."""
        bounded = cls(stream.stream_id, max_message_bytes)
        bounded.headers = stream.headers
        return bounded

    def write(self, data):
        if self.closed:
            return  # ended, or refused: the rest of an oversized request is discarded
        self.buffer.write(data)
        oversized = self._first_oversized_message()
        if oversized is None:
            super().write(b"")
            return

        offset, announced = oversized
        del self.buffer.bytes[offset:]  # what arrived of the oversized one (and anything after)
        super().write(b"")  # the complete messages before it
        self.buffer.discard()
        # A plain GrpcError, not a subclass: the entrypoints' deserialisation
        # handling passes exactly GrpcError through with its status unchanged.
        self.refused = GrpcError(
            code=StatusCode.RESOURCE_EXHAUSTED,
            message=f"Received message larger than max ({announced} vs. {self.max_message_bytes})",
        )
        self.close(self.refused)

    def _first_oversized_message(self):
        """(offset, announced length) of the first buffered message header that
        announces more than the limit, or None."""
        buffered = self.buffer.bytes
        offset = 0
        while offset + grpc_streams.HEADER_LENGTH <= len(buffered):
            (length,) = struct.unpack_from(">I", buffered, offset + 1)
            if length > self.max_message_bytes:
                return offset, length
            offset += grpc_streams.HEADER_LENGTH + length
        return None


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
    """Server connection: waking response streams, bounded request streams."""

    def __init__(self, sock, handle_request):
        # Read before the wakeup fds exist: a bad value then leaks nothing.
        limit = max_receive_message_bytes()
        wakeup = _Wakeup()
        super().__init__(sock, handle_request)
        self._wakeup = wakeup
        self.max_receive_message_bytes = limit
        # Refused streams waiting for their answer to go out, then for the reset.
        self._refused_streams = set()
        # The closure holds the streams dict, not the connection (see _WakeupMixin).
        receive_streams = self.receive_streams

        def handle_request_adapted(request_stream, response_stream):
            # request_received() has just created and registered both streams
            # from the HEADERS frame and hands them straight here, before it
            # processes any other event: nothing has been written to either.
            # The entrypoint's thread and nameko's deadline thread are spawned
            # below, by handle_request, and only ever see the streams passed
            # on; data_received() finds the bounded one through the dict.
            request_stream = _BoundedReceiveStream.replacing(request_stream, limit)
            receive_streams[request_stream.stream_id] = request_stream
            response_stream.queue = _WakingQueue(wakeup.wake)
            return handle_request(request_stream, response_stream)

        self.handle_request = handle_request_adapted

    def data_received(self, event):
        # Writes to the request stream (which may refuse) and returns the
        # flow-control credit, also for data a refused stream discards.
        super().data_received(event)
        stream_id = event.stream_id
        error = getattr(self.receive_streams.get(stream_id), "refused", None)
        if error is None or stream_id in self._refused_streams:
            return
        self._refused_streams.add(stream_id)
        log.warning(
            "refused gRPC request %s (stream %s): %s",
            self.receive_streams[stream_id].headers.get(":path"), stream_id, error.message,
        )
        # Answer now rather than rely on the entrypoint: it gets the error from
        # the request stream too, but only if and when it reads the request.
        # Through the waking queue, and a no-op if the response already closed.
        response_stream = self.send_streams.get(stream_id)
        if response_stream is not None:
            response_stream.close(error)

    def on_iteration(self):
        super().on_iteration()
        # Once a refused call's trailers have been sent (end_stream dropped its
        # response stream), ask the client to stop sending. Done here, between
        # batches of events, so no DataReceived for the stream can follow the
        # pop; h2 itself discards (and credits) DATA on a stream we reset.
        for stream_id in list(self._refused_streams):
            if stream_id in self.send_streams:
                continue
            self._refused_streams.discard(stream_id)
            if self.receive_streams.pop(stream_id, None) is None:
                continue  # the client ended or reset the stream itself
            try:
                self.conn.reset_stream(stream_id, error_code=ErrorCodes.NO_ERROR)
            except StreamClosedError:
                pass


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
    """Make nameko-grpc send responses and requests as soon as they are queued,
    and bound the size of request messages servers accept.

    Idempotent. Raises RuntimeError if the installed nameko-grpc is not the
    version this adapter was written against, and ValueError if
    ``GRPC_MAX_RECEIVE_MESSAGE_BYTES`` is set but not a byte count (checked
    here so a service fails at startup, not at its first connection; the
    value itself is read again for every connection).
    """
    installed = distribution_version("nameko-grpc")
    if installed != SUPPORTED_NAMEKO_GRPC:
        raise RuntimeError(
            f"services.common.grpc_transport copies nameko-grpc "
            f"{SUPPORTED_NAMEKO_GRPC}'s connection loop, but {installed} is "
            f"installed; re-check nameko_grpc/connection.py and update this module."
        )
    max_receive_message_bytes()

    # Checked by class rather than a module flag, so that a test restoring
    # the original names (monkeypatch) gets a real re-install next time.
    if not issubclass(grpc_channel.ServerConnectionManager, _WakeupMixin):
        grpc_channel.ServerConnectionManager = WakingServerConnectionManager
    if not issubclass(grpc_channel.ClientConnectionManager, _WakeupMixin):
        grpc_channel.ClientConnectionManager = WakingClientConnectionManager
