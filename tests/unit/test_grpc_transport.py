"""services.common.grpc_transport: the nameko-grpc connection loop is woken by queued data.

Most tests drive one real connection manager over a loopback TCP pair, with a bare h2
peer on the other end, and set nameko-grpc's SELECT_TIMEOUT to a minute: the loop can
then only leave select() because of socket data or the wakeup, so "the response arrived"
means "the wakeup worked", and a regression fails on the peer's socket timeout instead of
passing slowly. The select spy additionally checks which fd woke the loop.
"""
import importlib
import os
import socket
import struct
import sys
import textwrap
import types
import urllib.parse

import eventlet
import pytest
from grpc import StatusCode
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import DataReceived, RequestReceived, StreamEnded, StreamReset, TrailersReceived
from nameko_grpc import channel as grpc_channel
from nameko_grpc import connection as grpc_connection
from nameko_grpc.errors import GrpcError

from services.common import grpc_transport
from services.common.grpc_transport import (
    WakingClientConnectionManager,
    WakingServerConnectionManager,
    install,
)


ORIGINAL_SERVER = grpc_connection.ServerConnectionManager
ORIGINAL_CLIENT = grpc_connection.ClientConnectionManager

PEER_TIMEOUT = 5  # a lost wakeup shows up as socket.timeout here, not as a hang


class Message:
    """Anything with SerializeToString will do for SendStream."""

    def __init__(self, payload):
        self.payload = payload

    def SerializeToString(self):
        return self.payload


def grpc_frame(payload):
    return struct.pack("?", False) + struct.pack(">I", len(payload)) + payload


REQUEST_HEADERS = [
    (":method", "POST"),
    (":scheme", "http"),
    (":authority", "localhost"),
    (":path", "/probe.Echo/Unary"),
    ("te", "trailers"),
    ("content-type", "application/grpc+proto"),
    ("grpc-encoding", "identity"),
]


class SelectSpy:
    """Stands in for the `select` module inside grpc_transport."""

    def __init__(self, real_select):
        self.real_select = real_select
        self.parked = False
        self.entries = 0
        self.results = []

    def select(self, rlist, wlist, xlist, timeout=None):
        self.entries += 1
        self.parked = True
        try:
            result = self.real_select(rlist, wlist, xlist, timeout)
        finally:
            self.parked = False
        self.results.append(result[0])
        return result

    def wait_until_parked(self, entries_seen=0):
        """Until the loop is idle in a select() entered after `entries_seen`."""
        with eventlet.Timeout(PEER_TIMEOUT):
            while not (self.parked and self.entries > entries_seen):
                eventlet.sleep(0)


@pytest.fixture
def select_spy(monkeypatch):
    spy = SelectSpy(grpc_transport.select.select)
    monkeypatch.setattr(grpc_transport, "select", types.SimpleNamespace(select=spy.select))
    return spy


@pytest.fixture
def pristine_pools(monkeypatch):
    """nameko-grpc as shipped now, and again after the test, whatever install() did."""
    monkeypatch.setattr(grpc_channel, "ServerConnectionManager", ORIGINAL_SERVER)
    monkeypatch.setattr(grpc_channel, "ClientConnectionManager", ORIGINAL_CLIENT)


@pytest.fixture
def no_polling(monkeypatch):
    monkeypatch.setattr(grpc_connection, "SELECT_TIMEOUT", 60)


@pytest.fixture
def tcp_pair():
    listener = eventlet.listen(("127.0.0.1", 0))
    near = socket.create_connection(listener.getsockname())
    far, _ = listener.accept()
    listener.close()
    far.settimeout(PEER_TIMEOUT)
    yield near, far
    near.close()
    far.close()


class Peer:
    """The other end of the connection: a bare h2 connection that never writes
    unless told to, so it can't wake the loop by accident."""

    def __init__(self, sock, client_side):
        self.sock = sock
        self.conn = H2Connection(config=H2Configuration(client_side=client_side))
        self.conn.initiate_connection()

    def flush(self):
        self.sock.sendall(self.conn.data_to_send())

    def events_until(self, done):
        events = []
        while not done(events):
            data = self.sock.recv(65535)
            assert data, "connection closed before the expected frames arrived"
            events.extend(self.conn.receive_data(data))
        return events


def stream_ended(stream_id):
    return lambda events: any(
        isinstance(e, StreamEnded) and e.stream_id == stream_id for e in events
    )


def data_of(events, stream_id):
    return b"".join(
        e.data for e in events if isinstance(e, DataReceived) and e.stream_id == stream_id
    )


def run_server(sock):
    requests = eventlet.Queue()
    conn = WakingServerConnectionManager(sock, lambda req, resp: requests.put((req, resp)))
    return conn, eventlet.spawn(conn.run_forever), requests


def send_request(peer, *payloads):
    stream_id = peer.conn.get_next_available_stream_id()
    peer.conn.send_headers(stream_id, REQUEST_HEADERS)
    peer.conn.send_data(stream_id, b"".join(grpc_frame(p) for p in payloads), end_stream=True)
    peer.flush()
    return stream_id


def woken_by_wakeup(spy, conn):
    return sum(1 for readable in spy.results if conn._wakeup in readable)


def test_install_rebinds_the_pool_classes_once(pristine_pools):
    install()
    install()

    assert grpc_channel.ServerConnectionManager is WakingServerConnectionManager
    assert grpc_channel.ClientConnectionManager is WakingClientConnectionManager
    assert WakingServerConnectionManager.__bases__[-1] is ORIGINAL_SERVER
    assert WakingClientConnectionManager.__bases__[-1] is ORIGINAL_CLIENT
    # the originals are not modified, only the names the pools instantiate
    assert grpc_connection.ServerConnectionManager is ORIGINAL_SERVER
    assert "run_forever" not in vars(ORIGINAL_SERVER)


def test_install_refuses_an_unknown_nameko_grpc(pristine_pools, monkeypatch):
    monkeypatch.setattr(grpc_transport, "distribution_version", lambda name: "1.4.0")

    with pytest.raises(RuntimeError, match="1.4.0"):
        install()
    assert grpc_channel.ServerConnectionManager is ORIGINAL_SERVER


def test_unary_response_is_sent_when_the_worker_enqueues_it(tcp_pair, select_spy, no_polling):
    near, far = tcp_pair
    peer = Peer(far, client_side=True)
    conn, loop, requests = run_server(near)

    stream_id = send_request(peer, b"ping")
    _, response_stream = requests.get(timeout=PEER_TIMEOUT)
    select_spy.wait_until_parked()
    wakeups_before = woken_by_wakeup(select_spy, conn)

    response_stream.populate([Message(b"pong")])  # what Grpc.handle_result does

    events = peer.events_until(stream_ended(stream_id))
    assert data_of(events, stream_id) == grpc_frame(b"pong")
    trailers = [e for e in events if isinstance(e, TrailersReceived)]
    assert (b"grpc-status", b"0") in trailers[0].headers
    assert woken_by_wakeup(select_spy, conn) > wakeups_before
    assert [] not in select_spy.results  # never woke by timeout
    assert near.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    far.close()
    loop.wait()


def test_each_streamed_message_wakes_the_loop(tcp_pair, select_spy, no_polling):
    near, far = tcp_pair
    peer = Peer(far, client_side=True)
    conn, loop, requests = run_server(near)
    stream_id = send_request(peer, b"stream please")
    _, response_stream = requests.get(timeout=PEER_TIMEOUT)

    def produce():
        # each message is produced only once the loop is idle in select again
        seen = 0
        for i in range(3):
            select_spy.wait_until_parked(seen)
            seen = select_spy.entries
            yield Message(b"msg%d" % i)

    producer = eventlet.spawn(response_stream.populate, produce())
    events = peer.events_until(stream_ended(stream_id))
    producer.wait()

    assert data_of(events, stream_id) == b"".join(grpc_frame(b"msg%d" % i) for i in range(3))
    assert woken_by_wakeup(select_spy, conn) >= 3
    assert [] not in select_spy.results

    far.close()
    loop.wait()


def test_error_close_wakes_the_loop(tcp_pair, select_spy, no_polling):
    # deadline and exception paths close the stream with an error instead of populating it
    near, far = tcp_pair
    peer = Peer(far, client_side=True)
    conn, loop, requests = run_server(near)
    stream_id = send_request(peer, b"x")
    _, response_stream = requests.get(timeout=PEER_TIMEOUT)
    select_spy.wait_until_parked()

    response_stream.close(GrpcError(code=StatusCode.DEADLINE_EXCEEDED, message="late"))

    events = peer.events_until(stream_ended(stream_id))
    trailers = [e for e in events if isinstance(e, TrailersReceived)][0]
    assert (b"grpc-status", b"%d" % StatusCode.DEADLINE_EXCEEDED.value[0]) in trailers.headers
    assert [] not in select_spy.results

    far.close()
    loop.wait()


def test_client_request_is_sent_when_queued(tcp_pair, select_spy, no_polling):
    near, far = tcp_pair
    peer = Peer(far, client_side=False)
    conn = WakingClientConnectionManager(near)
    loop = eventlet.spawn(conn.run_forever)
    select_spy.wait_until_parked()

    seen = select_spy.entries
    request_stream, response_stream = conn.send_request(REQUEST_HEADERS)
    select_spy.wait_until_parked(seen)  # headers went out; the body is not queued yet
    request_stream.populate([Message(b"hello")])  # what ClientBase.invoke spawns

    events = peer.events_until(stream_ended(1))
    assert any(isinstance(e, RequestReceived) and e.stream_id == 1 for e in events)
    assert data_of(events, 1) == grpc_frame(b"hello")
    assert woken_by_wakeup(select_spy, conn) >= 2  # once for headers, once for the body
    assert [] not in select_spy.results
    assert near.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    # the response direction is driven by socket readiness, as before
    peer.conn.send_headers(1, [(":status", "200"), ("content-type", "application/grpc+proto")])
    peer.conn.send_data(1, grpc_frame(b"world"))
    peer.conn.send_headers(1, [("grpc-status", "0")], end_stream=True)
    peer.flush()
    received = response_stream.queue.get(timeout=PEER_TIMEOUT)
    assert received == (False, b"world")

    far.close()
    loop.wait()


def open_fds():
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_wakeup_fds_are_closed_when_the_peer_goes_away(tcp_pair):
    near, far = tcp_pair
    baseline = open_fds()
    pair = {str(near.fileno()), str(far.fileno())}
    conn = WakingServerConnectionManager(near, lambda req, resp: None)
    assert len(open_fds() - baseline) == 2  # the wakeup socketpair
    loop = eventlet.spawn(conn.run_forever)

    far.close()
    loop.wait()

    assert conn.stopped.is_set()
    assert open_fds() <= baseline - pair  # the wakeup socketpair went with them
    conn._wake()  # a worker finishing late must not touch the closed fds


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_wakeup_fds_are_closed_by_the_time_stop_returns(tcp_pair, no_polling):
    near, far = tcp_pair
    baseline = open_fds()
    conn = WakingClientConnectionManager(near)
    loop = eventlet.spawn(conn.run_forever)
    eventlet.sleep(0)  # let the loop start (and park: polling is off)

    conn.stop()  # must not need the 60 s select timeout to notice

    assert conn.stopped.is_set()
    assert not (open_fds() - baseline)
    assert conn._wakeup._reader.fileno() == -1 and conn._wakeup._writer.fileno() == -1
    loop.wait()


PROTO = """
syntax = "proto3";
package gtprobe;
message Ping { string msg = 1; int32 count = 2; }
message Pong { string msg = 1; int32 seq = 2; }
service Probe {
  rpc Unary (Ping) returns (Pong);
  rpc Stream (Ping) returns (stream Pong);
}
"""


@pytest.fixture(scope="module")
def probe_protos(tmp_path_factory):
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("grpc_transport_protos")
    (out / "gtprobe.proto").write_text(textwrap.dedent(PROTO))
    args = [f"-I{out}", f"--python_out={out}", f"--grpc_python_out={out}"]
    assert protoc.main(["protoc", *args, str(out / "gtprobe.proto")]) == 0
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("gtprobe_pb2"), importlib.import_module("gtprobe_pb2_grpc")
    finally:
        sys.path.remove(str(out))


def test_round_trip_through_nameko_with_install(
    pristine_pools, probe_protos, container_factory, no_polling
):
    """Server (Grpc entrypoint) and client (nameko_grpc Client) both go through the
    pools' classes after install(); with polling off, every hop needs the wakeup."""
    from nameko_grpc.client import Client
    from nameko_grpc.entrypoint import Grpc

    pb2, pb2_grpc = probe_protos
    install()

    grpc = Grpc.implementing(pb2_grpc.ProbeStub)

    class ProbeService:
        name = "grpc_transport_probe"

        @grpc
        def Unary(self, request, context):
            return pb2.Pong(msg=request.msg)

        @grpc
        def Stream(self, request, context):
            for i in range(request.count):
                yield pb2.Pong(msg=request.msg, seq=i)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    container = container_factory(
        ProbeService, {"GRPC_BIND_HOST": "127.0.0.1", "GRPC_BIND_PORT": port}
    )
    container.start()

    client = Client(f"//127.0.0.1:{port}", pb2_grpc.ProbeStub)
    proxy = client.start()
    try:
        assert isinstance(client.channel.conn_pool.get(), WakingClientConnectionManager)
        for i in range(3):
            assert proxy.Unary(pb2.Ping(msg=f"m{i}"), timeout=PEER_TIMEOUT).msg == f"m{i}"
        streamed = proxy.Stream(pb2.Ping(msg="s", count=4), timeout=PEER_TIMEOUT)
        assert [(r.msg, r.seq) for r in streamed] == [("s", i) for i in range(4)]

        grpc_server = next(iter(container.entrypoints)).grpc_server
        server_connections = [
            ref() for ref in grpc_server.channel.conn_pool.connections.queue
        ]
        assert any(isinstance(c, WakingServerConnectionManager) for c in server_connections)
    finally:
        client.stop()
    container.stop()


# --- request size limit --------------------------------------------------------------------

RESOURCE_EXHAUSTED = b"%d" % StatusCode.RESOURCE_EXHAUSTED.value[0]


class Raw:
    """A message type for ReceiveStream.consume that keeps the bytes as they are."""

    def ParseFromString(self, data):
        self.data = data


def message_header(announced_length):
    return struct.pack("?", False) + struct.pack(">I", announced_length)


def consumed(stream):
    """Messages the stream delivers, then the error it was closed with (or None)."""
    messages = []
    try:
        for message in stream.consume(Raw):
            messages.append(message.data)
    except GrpcError as error:
        return messages, error
    return messages, None


def bounded(limit):
    return grpc_transport._BoundedReceiveStream(1, limit)


def test_a_message_of_exactly_the_limit_is_delivered():
    stream = bounded(64)
    data = grpc_frame(b"m" * 64)
    for i in range(0, len(data), 7):  # header and body split across writes
        stream.write(data[i:i + 7])
    stream.close()

    assert stream.refused is None
    assert consumed(stream) == ([b"m" * 64], None)


def test_a_message_is_refused_as_soon_as_its_header_announces_more():
    stream = bounded(64)
    stream.write(message_header(65)[:3])
    assert stream.refused is None  # the length is not known yet

    stream.write(message_header(65)[3:])  # header complete, no body byte sent

    assert stream.closed
    assert stream.refused.code == StatusCode.RESOURCE_EXHAUSTED
    assert stream.refused.message == "Received message larger than max (65 vs. 64)"
    assert len(stream.buffer) == 0
    stream.write(b"x" * 4096)  # the rest of the body is dropped, not buffered
    assert len(stream.buffer) == 0
    messages, error = consumed(stream)
    assert messages == [] and error is stream.refused
    assert type(error) is GrpcError  # exact type: GrpcError.from_exception passes it through


def test_messages_before_the_oversized_one_are_delivered_first():
    # a streaming request: two good messages and the header of a bad one in one write
    stream = bounded(64)
    stream.write(grpc_frame(b"one") + grpc_frame(b"two") + message_header(1 << 30) + b"partial")

    assert stream.refused.message == f"Received message larger than max ({1 << 30} vs. 64)"
    assert len(stream.buffer) == 0
    assert consumed(stream) == ([b"one", b"two"], stream.refused)


def test_every_message_header_is_checked_not_only_the_first():
    stream = bounded(64)
    stream.write(grpc_frame(b"ok") + message_header(100)[:2])
    assert stream.refused is None
    stream.write(message_header(100)[2:])

    assert stream.refused.message == "Received message larger than max (100 vs. 64)"
    assert consumed(stream) == ([b"ok"], stream.refused)


def test_the_limit_defaults_to_grpcios_4_mib_and_is_read_from_config(pristine_pools):
    from nameko import config

    def limit_of_a_new_connection():
        near, far = socket.socketpair()
        try:
            conn = WakingServerConnectionManager(near, lambda req, resp: None)
            conn._wakeup.close()
            return conn.max_receive_message_bytes
        finally:
            near.close()
            far.close()

    assert limit_of_a_new_connection() == 4 * 1024 * 1024
    with config.patch({"GRPC_MAX_RECEIVE_MESSAGE_BYTES": 1234}):
        assert limit_of_a_new_connection() == 1234
    for bad in ("4MB", -1, 1.5, True):
        with config.patch({"GRPC_MAX_RECEIVE_MESSAGE_BYTES": bad}):
            with pytest.raises(ValueError, match="GRPC_MAX_RECEIVE_MESSAGE_BYTES"):
                limit_of_a_new_connection()
            with pytest.raises(ValueError, match="GRPC_MAX_RECEIVE_MESSAGE_BYTES"):
                install()  # a service with a bad value fails at startup
    assert grpc_channel.ServerConnectionManager is ORIGINAL_SERVER


def stream_reset(stream_id):
    return lambda events: any(
        isinstance(e, StreamReset) and e.stream_id == stream_id for e in events
    )


def trailers_of(events, stream_id):
    (trailers,) = [e for e in events if isinstance(e, TrailersReceived) and e.stream_id == stream_id]
    return dict(trailers.headers)


def send_flow_controlled(peer, stream_id, data):
    """Send `data` and end the stream, as fast as the server's flow-control credit allows."""
    events = []
    while data:
        window = min(peer.conn.local_flow_control_window(stream_id), peer.conn.max_outbound_frame_size)
        if window == 0:
            received = peer.sock.recv(65535)  # a lost credit ends here, as socket.timeout
            assert received, "connection closed while waiting for flow-control credit"
            events.extend(peer.conn.receive_data(received))
            peer.flush()
            continue
        peer.conn.send_data(stream_id, data[:window])
        data = data[window:]
        peer.flush()
    peer.conn.end_stream(stream_id)
    peer.flush()
    return events


def test_oversized_request_is_refused_before_its_body_arrives(tcp_pair, select_spy, no_polling):
    near, far = tcp_pair
    peer = Peer(far, client_side=True)
    conn, loop, requests = run_server(near)  # default limit: 4 MiB

    stream_id = peer.conn.get_next_available_stream_id()
    peer.conn.send_headers(stream_id, REQUEST_HEADERS)
    peer.conn.send_data(stream_id, message_header(4 * 1024 * 1024 + 1))  # the header, no body
    peer.flush()

    events = peer.events_until(stream_reset(stream_id))
    trailers = trailers_of(events, stream_id)
    assert trailers[b"grpc-status"] == RESOURCE_EXHAUSTED
    assert urllib.parse.unquote(trailers[b"grpc-message"].decode()) == \
        "Received message larger than max (4194305 vs. 4194304)"
    (reset,) = [e for e in events if isinstance(e, StreamReset)]
    assert reset.error_code == ErrorCodes.NO_ERROR  # "stop sending", after the full answer
    assert [] not in select_spy.results  # sent without waiting for the select timeout

    # the entrypoint got the bounded stream: reading the request fails the same way
    request_stream, response_stream = requests.get(timeout=PEER_TIMEOUT)
    assert isinstance(request_stream, grpc_transport._BoundedReceiveStream)
    assert consumed(request_stream) == ([], request_stream.refused)
    assert response_stream.closed
    # nothing of the stream is left on the connection
    assert stream_id not in conn.receive_streams and stream_id not in conn.send_streams
    assert not conn._refused_streams

    far.close()
    loop.wait()


def test_a_refusal_leaves_the_connection_and_its_other_streams_working(tcp_pair, no_polling):
    from nameko import config

    near, far = tcp_pair
    peer = Peer(far, client_side=True)
    with config.patch({"GRPC_MAX_RECEIVE_MESSAGE_BYTES": 100_000}):
        conn, loop, requests = run_server(near)

    # the refused stream: its header and as much body as the connection's
    # flow-control window (64 KiB) allows, all in flight at once
    refused_id = peer.conn.get_next_available_stream_id()
    peer.conn.send_headers(refused_id, REQUEST_HEADERS)
    body = message_header(200_000) + b"x" * (peer.conn.local_flow_control_window(refused_id) - 5)
    for i in range(0, len(body), peer.conn.max_outbound_frame_size):
        peer.conn.send_data(refused_id, body[i:i + peer.conn.max_outbound_frame_size])
    peer.flush()
    events = peer.events_until(stream_reset(refused_id))
    assert trailers_of(events, refused_id)[b"grpc-status"] == RESOURCE_EXHAUSTED
    refused_request, _ = requests.get(timeout=PEER_TIMEOUT)
    assert len(refused_request.buffer) == 0

    # a request just under the limit, larger than what is left of the window
    # unless the server gave back the credit of the discarded data
    ok_id = peer.conn.get_next_available_stream_id()
    peer.conn.send_headers(ok_id, REQUEST_HEADERS)
    payload = bytes(range(256)) * 390  # 99,840 bytes
    events = send_flow_controlled(peer, ok_id, grpc_frame(payload))
    request_stream, response_stream = requests.get(timeout=PEER_TIMEOUT)
    assert request_stream.stream_id == ok_id
    assert consumed(request_stream) == ([payload], None)

    response_stream.populate([Message(b"pong")])
    events += peer.events_until(stream_ended(ok_id))
    assert data_of(events, ok_id) == grpc_frame(b"pong")
    assert trailers_of(events, ok_id)[b"grpc-status"] == b"0"
    assert not conn._refused_streams and refused_id not in conn.receive_streams
    # every byte received has been credited back to the client or is waiting in h2's
    # batching of WINDOW_UPDATEs: none went missing with the discarded data
    window = conn.conn._inbound_flow_control_window_manager
    assert window.current_window_size + window._bytes_processed == window.max_window_size

    far.close()
    loop.wait()


def test_refused_through_nameko_and_the_leadflow_entrypoint_without_a_worker(
    pristine_pools, probe_protos, container_factory
):
    """The status survives LeadflowGrpc.handle_request's deserialisation handling, no
    worker runs, the call is counted under RESOURCE_EXHAUSTED, and the same client
    (nameko-grpc's, as in service-to-service calls) goes on working."""
    from nameko_grpc.client import Client
    from prometheus_client import REGISTRY

    from services.common.rpc import LeadflowGrpc

    pb2, pb2_grpc = probe_protos
    install()
    grpc = LeadflowGrpc.implementing(pb2_grpc.ProbeStub)
    calls = []

    class LimitProbe:
        name = "grpc_transport_limit_probe"

        @grpc(public=True)
        def Unary(self, request, context):
            calls.append(len(request.msg))
            return pb2.Pong(msg=str(len(request.msg)))

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    container = container_factory(LimitProbe, {
        "GRPC_BIND_HOST": "127.0.0.1", "GRPC_BIND_PORT": port, "GRPC_MAX_RECEIVE_MESSAGE_BYTES": 1000,
    })
    container.start()

    def counted(code):
        return REGISTRY.get_sample_value("leadflow_grpc_requests_total", {
            "service": LimitProbe.name, "method": "Unary", "code": code}) or 0

    client = Client(f"//127.0.0.1:{port}", pb2_grpc.ProbeStub)
    proxy = client.start()
    try:
        too_big = pb2.Ping(msg="x" * 50_000)
        with pytest.raises(GrpcError) as refused:
            proxy.Unary(too_big, timeout=PEER_TIMEOUT)
        assert refused.value.code == StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.message == f"Received message larger than max ({too_big.ByteSize()} vs. 1000)"
        # the entrypoint's thread may still be finishing; it records the status as it exits
        with eventlet.Timeout(PEER_TIMEOUT):
            while not counted("RESOURCE_EXHAUSTED"):
                eventlet.sleep(0.001)
        assert counted("RESOURCE_EXHAUSTED") == 1 and counted("INVALID_ARGUMENT") == 0

        assert proxy.Unary(pb2.Ping(msg="y" * 990), timeout=PEER_TIMEOUT).msg == "990"
        assert calls == [990]  # the refused call never reached a worker
    finally:
        client.stop()
    container.stop()
