"""The HTTP/JSON gateway: Leadflow's gRPC API for browsers and other HTTP clients, and the web console.

Why a small ASGI app (Starlette on uvicorn) and not nameko ``@http``: the gateway keeps no state,
consumes no events and touches no store, which is what nameko's containers are for; what it does is
fan each HTTP request out to a gRPC call, and grpcio's asyncio client does that natively, whereas
inside nameko it would run under eventlet's monkey-patching, which grpcio does not support.

Authentication is the services' own: the same bearer tokens and hashed token table. The gateway
turns away a missing or unknown token itself (401 without a backend call) and forwards the header;
each service then checks the caller's role as it does for any gRPC client, so there is one set of
role rules, in the services.
"""
import asyncio
import contextlib
import importlib.metadata
import json
import logging
import queue
import time
import urllib.parse
import uuid
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from leadflow.capture.v1 import capture_pb2
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.cli.client import default_address
from services.common import logs, metrics
from services.common.auth import authenticate, parse_token_table
from services.common.errors import FieldViolation, Unauthenticated
from services.common.settings import SERVICE_NAMES
from services.gateway import transcoding
from services.gateway.openapi import load_comments, openapi_document
from services.gateway.transcoding import RequestBodyError, Rpc, error_body
from services.gateway.uploads import MultipartStream, UploadMessages, boundary_of, is_download, upload_shape

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
# Written beside the generated stubs (build/gen here, /app/build/gen in the image) by `make protos`.
DESCRIPTOR_SET = Path(capture_pb2.__file__).resolve().parents[3] / "leadflow.binpb"
TRACE_ID_HEADER = "x-trace-id"
SECURITY_HEADERS = {
    # The console loads only its own scripts; images may come from capture's public host (QR codes).
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: http: https:; "
                               "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def catalogue() -> tuple[dict, dict, dict]:
    """Every RPC the gateway serves, by (service, Method): the unary ones (JSON), the uploads
    (multipart files in, with their UploadShape) and the downloads (a file's bytes out)."""
    every = [Rpc(service, method) for service, descriptor in transcoding.SERVICE_DESCRIPTORS.items()
             for method in descriptor.methods]
    uploads = {(r.service, r.name): (r, shape) for r in every if (shape := upload_shape(r.method))}
    downloads = {(r.service, r.name): r for r in every if is_download(r.method)}
    return transcoding.unary_rpcs(), uploads, downloads


def api_document(version: str) -> dict:
    """The OpenAPI document of everything catalogue() serves."""
    rpcs, uploads, downloads = catalogue()
    return openapi_document(rpcs.values(), load_comments(DESCRIPTOR_SET), version, uploads.values(),
                            downloads.values())


def _error(code: grpc.StatusCode, message: str, trace_id: str, violations=()) -> JSONResponse:
    return JSONResponse(error_body(code, message, violations, trace_id), transcoding.http_status_of(code),
                        headers={TRACE_ID_HEADER: trace_id})


class Gateway:
    def __init__(self, config: dict, addresses: dict | None = None):
        self.config = config
        self.token_table = parse_token_table(config["LEADFLOW_AUTH_TOKENS"])
        self.rpcs, self.uploads, self.downloads = catalogue()
        self.addresses = {s: (addresses or {}).get(s) or default_address(s) for s in SERVICE_NAMES}
        self.channels: dict[str, grpc.aio.Channel] = {}
        self.blocking_channels: dict[str, grpc.Channel] = {}  # uploads only; see _upload
        self._openapi = None

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def open(self) -> None:
        self.channels = {s: grpc.aio.insecure_channel(self.addresses[s]) for s in SERVICE_NAMES}
        self.blocking_channels = {s: grpc.insecure_channel(self.addresses[s]) for s in SERVICE_NAMES}

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()
        for channel in self.blocking_channels.values():
            channel.close()

    # --- endpoints ---------------------------------------------------------------------------------------

    async def call(self, request: Request) -> Response:
        started = time.perf_counter()
        trace_id = _trace_id(request)
        service, method = request.path_params["service"], request.path_params["method"]
        known = any((service, method) in table for table in (self.rpcs, self.uploads, self.downloads))
        operation = f"{service}.{method}" if known else "unknown"
        logs.bind(trace_id=trace_id)  # every line about this call carries the id the caller was given
        response = await self._call(request, service, method, trace_id)
        elapsed = time.perf_counter() - started
        metrics.GATEWAY_REQUESTS.labels(operation, str(response.status_code)).inc()
        metrics.GATEWAY_LATENCY.labels(operation).observe(elapsed)
        if response.status_code >= 500:
            log.error("%s answered %d after %.0f ms", operation, response.status_code, elapsed * 1000)
        return response

    async def _call(self, request: Request, service: str, method: str, trace_id: str) -> Response:
        key = (service, method)
        rpc = self.rpcs.get(key) or self.downloads.get(key) or (self.uploads.get(key) or (None,))[0]
        if rpc is None:
            return _error(grpc.StatusCode.NOT_FOUND, f"no RPC {service}/{method}; see /openapi.json", trace_id)
        try:
            authenticate(request.headers.get("authorization"), self.token_table)
        except Unauthenticated as exc:
            return _error(grpc.StatusCode.UNAUTHENTICATED, str(exc), trace_id)
        metadata = (("authorization", request.headers["authorization"]), (TRACE_ID_HEADER, trace_id))
        if key in self.uploads:
            return await self._upload(request, *self.uploads[key], metadata, trace_id)
        body = await self._json_body(request, trace_id)
        if isinstance(body, Response):
            return body
        try:
            message = transcoding.request_from_json(rpc, body)
        except RequestBodyError as exc:
            return _error(grpc.StatusCode.INVALID_ARGUMENT, "the request body does not fit "
                          f"{rpc.method.input_type.name}", trace_id, [exc.violation])
        if key in self.downloads:
            return await self._download(rpc, message, metadata, trace_id)
        call = self.channels[service].unary_unary(
            rpc.grpc_path, request_serializer=rpc.request_class.SerializeToString,
            response_deserializer=rpc.response_class.FromString)
        try:
            reply = await call(message, metadata=metadata, timeout=self.config["GATEWAY_RPC_TIMEOUT_SECONDS"])
        except grpc.aio.AioRpcError as exc:
            return _rpc_error(rpc, exc, trace_id)
        return JSONResponse(transcoding.response_to_json(reply), headers={TRACE_ID_HEADER: trace_id})

    async def _upload(self, request: Request, rpc: Rpc, shape, metadata, trace_id: str) -> Response:
        """multipart/form-data in, a client stream out, as the bytes arrive. The header part is read
        and checked before the service is called, so a bad header is refused with nothing sent.

        The stream goes out through grpcio's blocking client on a worker thread, not its asyncio
        client: when a service answers before the whole file is sent (a bad header field, a file
        too large), the asyncio client can report INTERNAL "Internal error from Core" instead of the
        service's own status (grpc/grpc#36066). Messages pass through a small bounded queue, so a
        slow service slows the upload rather than filling memory."""
        body, pending = request.stream(), []
        messages = UploadMessages(rpc, shape)
        try:
            parts = MultipartStream(boundary_of(request.headers.get("content-type", "")))
            finished = True
            async for data in body:
                parts.feed(data)
                for kind, value in parts.events():
                    pending += messages.on_event(kind, value)
                if messages.header_done:
                    finished = False
                    break
            if finished:  # the whole body came before (or with) the end of the header part
                parts.close()
                for kind, value in parts.events():
                    pending += messages.on_event(kind, value)
                messages.finish()
        except RequestBodyError as exc:
            return self._bad_upload(rpc, exc, trace_id)

        outbox: queue.Queue = queue.Queue(maxsize=8)

        def requests():
            while (item := outbox.get()) is not _END_OF_UPLOAD:
                yield item

        call = self.blocking_channels[rpc.service].stream_unary(
            rpc.grpc_path, request_serializer=rpc.request_class.SerializeToString,
            response_deserializer=rpc.response_class.FromString)
        future = call.future(requests(), metadata=metadata, timeout=self.config["GATEWAY_RPC_TIMEOUT_SECONDS"])
        done = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda _: done.get_loop().call_soon_threadsafe(
            lambda: done.done() or done.set_result(None)))

        async def send(item) -> bool:
            """False once the service has answered (it needs no more)."""
            while not future.done():
                try:
                    outbox.put_nowait(item)
                    return True
                except queue.Full:
                    await asyncio.wait([done], timeout=0.005)
            return False

        try:
            answered = not all([await send(message) for message in pending])
            if not finished and not answered:
                async for data in body:
                    parts.feed(data)
                    for kind, value in parts.events():
                        for message in messages.on_event(kind, value):
                            answered = answered or not await send(message)
                    if answered:
                        break
                else:
                    parts.close()
                    for kind, value in parts.events():
                        for message in messages.on_event(kind, value):
                            await send(message)
                    messages.finish()
            await send(_END_OF_UPLOAD)
        except (RequestBodyError, ClientDisconnect) as exc:
            # Cancelling ends the stream as aborted: the service never takes a cut-off file for a short one.
            future.cancel()
            if isinstance(exc, RequestBodyError):
                return self._bad_upload(rpc, exc, trace_id)
            return _error(grpc.StatusCode.CANCELLED, "the client went away during the upload", trace_id)
        finally:
            # grpcio's sending thread may wait in outbox.get() after an early answer: release it.
            with contextlib.suppress(queue.Full):
                outbox.put_nowait(_END_OF_UPLOAD)
        await done
        try:
            reply = future.result()
        except grpc.RpcError as exc:
            return _rpc_error(rpc, exc, trace_id)
        return JSONResponse(transcoding.response_to_json(reply), headers={TRACE_ID_HEADER: trace_id})

    @staticmethod
    def _bad_upload(rpc: Rpc, exc: RequestBodyError, trace_id: str) -> JSONResponse:
        return _error(grpc.StatusCode.INVALID_ARGUMENT, f"the upload does not fit {rpc.method.input_type.name}",
                      trace_id, [exc.violation])

    async def _download(self, rpc: Rpc, message, metadata, trace_id: str) -> Response:
        """A server-streamed file as an HTTP body: the first message (what the file is) becomes the
        headers, so an error before it is still a JSON error with its status."""
        call = self.channels[rpc.service].unary_stream(
            rpc.grpc_path, request_serializer=rpc.request_class.SerializeToString,
            response_deserializer=rpc.response_class.FromString)
        responses = call(message, metadata=metadata, timeout=self.config["GATEWAY_RPC_TIMEOUT_SECONDS"])
        try:
            first = await responses.read()
        except grpc.aio.AioRpcError as exc:
            return _rpc_error(rpc, exc, trace_id)
        if first is grpc.aio.EOF:
            return _error(grpc.StatusCode.INTERNAL, "the service sent no file", trace_id)
        described = getattr(first, first.WhichOneof(rpc.method.output_type.oneofs[0].name) or "chunk")
        headers = {TRACE_ID_HEADER: trace_id}
        filename = getattr(described, "filename", "")
        if filename:
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{urllib.parse.quote(filename)}"
        if getattr(described, "size", 0):
            headers["Content-Length"] = str(described.size)

        async def chunks():
            if first.WhichOneof(rpc.method.output_type.oneofs[0].name) == "chunk":
                yield first.chunk
            while (response := await responses.read()) is not grpc.aio.EOF:
                yield response.chunk

        return StreamingResponse(chunks(), media_type=getattr(described, "content_type", "") or
                                 "application/octet-stream", headers=headers)

    async def _json_body(self, request: Request, trace_id: str):
        limit = self.config["GATEWAY_MAX_BODY_BYTES"]
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return self._too_large(limit, trace_id)
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                return self._too_large(limit, trace_id)
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            return _error(grpc.StatusCode.INVALID_ARGUMENT, "the request body is not JSON", trace_id,
                          [FieldViolation("body", str(exc))])

    @staticmethod
    def _too_large(limit: int, trace_id: str) -> JSONResponse:
        body = error_body(grpc.StatusCode.RESOURCE_EXHAUSTED, f"the request body is larger than {limit} bytes",
                          trace_id=trace_id)
        body["error"]["http_status"] = 413
        return JSONResponse(body, 413, headers={TRACE_ID_HEADER: trace_id})

    async def me(self, request: Request) -> Response:
        try:
            principal = authenticate(request.headers.get("authorization"), self.token_table)
        except Unauthenticated as exc:
            return _error(grpc.StatusCode.UNAUTHENTICATED, str(exc), _trace_id(request))
        return JSONResponse(principal.as_dict())

    async def openapi(self, request: Request) -> Response:
        if self._openapi is None:
            self._openapi = api_document(importlib.metadata.version("leadflow"))
        return JSONResponse(self._openapi)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """Ready when every backend answers its gRPC health check: a console whose services are
        down should be taken out of the load balancer, not show errors on every page."""
        down = []
        for service, channel in self.channels.items():
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status != health_pb2.HealthCheckResponse.SERVING:
                    down.append(service)
            except grpc.aio.AioRpcError:
                down.append(service)
        status = 503 if down else 200
        return JSONResponse({"status": "unavailable" if down else "ok", "down": down}, status)

    async def prometheus(self, request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


_END_OF_UPLOAD = object()


def _rpc_error(rpc: Rpc, exc, trace_id: str) -> JSONResponse:
    """A service's status (from the asyncio or the blocking client) as the HTTP error."""
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        log.warning("backend %s unavailable: %s", rpc.service, exc.details())
    return _error(exc.code(), exc.details() or exc.code().name, trace_id,
                  transcoding.field_violations_of(exc.trailing_metadata()))


def _trace_id(request: Request) -> str:
    given = request.headers.get(TRACE_ID_HEADER, "")
    return given if given.isascii() and given.replace("-", "").isalnum() and len(given) <= 64 else uuid.uuid4().hex


async def _console_missing(request: Request) -> Response:
    return HTMLResponse("<h1>Leadflow</h1><p>The web console is not built. Run <code>make console</code> "
                        "(or <code>make run</code>, which builds it).</p>", 503)


def console_dir(config: dict) -> Path:
    return Path(config["GATEWAY_CONSOLE_DIR"]) if config["GATEWAY_CONSOLE_DIR"] else REPO / "console" / "dist"


def create_app(config: dict, addresses: dict | None = None) -> Starlette:
    gateway = Gateway(config, addresses)
    folder = console_dir(config)
    routes = [
        Route("/healthz", gateway.healthz),
        Route("/readyz", gateway.readyz),
        Route("/metrics", gateway.prometheus),
        Route("/openapi.json", gateway.openapi),
        Route(f"{transcoding.API_PREFIX}/me", gateway.me),
        Route(transcoding.API_PREFIX + "/{service}/{method}", gateway.call, methods=["POST"]),
    ]
    if (folder / "index.html").exists():
        routes.append(Mount("/", StaticFiles(directory=folder, html=True)))
    else:
        routes.append(Route("/", _console_missing))
    middleware = [Middleware(SecurityHeaders)]
    if config["GATEWAY_CORS_ORIGINS"]:
        middleware.append(Middleware(CORSMiddleware, allow_origins=config["GATEWAY_CORS_ORIGINS"],
                                     allow_methods=["GET", "POST"],
                                     allow_headers=["authorization", "content-type", TRACE_ID_HEADER],
                                     expose_headers=[TRACE_ID_HEADER]))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await gateway.open()
        try:
            yield
        finally:
            await gateway.close()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.gateway = gateway
    return app


class SecurityHeaders:
    """Pure ASGI middleware (no response buffering) adding the security headers to every response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                            if k.lower().encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
