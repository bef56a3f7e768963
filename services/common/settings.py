"""Leadflow configuration: every setting is an environment variable with a default, read here only.

Services never look at ``os.environ`` themselves: the runner turns these settings into nameko's
global ``config`` and code reads ``nameko.config``; tests override with ``config.patch``.
"""
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ServicePorts:
    grpc: int
    http: int


# DESIGN.md §2: gRPC 50051.., HTTP (health, metrics, public endpoints) 8001.., in pipeline order.
SERVICE_PORTS = {
    "capture": ServicePorts(grpc=50051, http=8001),
    "scoring": ServicePorts(grpc=50052, http=8002),
    "routing": ServicePorts(grpc=50053, http=8003),
    "opportunity": ServicePorts(grpc=50054, http=8004),
    "reporting": ServicePorts(grpc=50055, http=8005),
}
SERVICE_NAMES = tuple(SERVICE_PORTS)

DEFAULTS = {
    "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/",
    "MONGODB_URI": "mongodb://127.0.0.1:27017/",
    "REDIS_URI": "redis://127.0.0.1:6379/0",
    # Database names are "<prefix>_<service>": each service owns its own database.
    "MONGODB_DB_PREFIX": "leadflow",
    # Redis keys are "<prefix>:<service>:...", so several installations (or test runs) can share one Redis.
    "REDIS_KEY_PREFIX": "leadflow",
    "GRPC_BIND_HOST": "0.0.0.0",
    "HTTP_BIND_HOST": "0.0.0.0",
    # "principal:role:team:sha256(token)" entries separated by commas; empty means every call is refused.
    "LEADFLOW_AUTH_TOKENS": "",
    "LOG_LEVEL": "INFO",
    # A failing event is retried this many times before it is dead-lettered.
    "EVENT_MAX_ATTEMPTS": "5",
    # Consumers take up to this many waiting events as one batch (one transaction), and run this many
    # batches of one handler at once; a lone event starts a batch of one at once. One at a time: on the
    # embedded store two batch transactions of one handler queue behind each other's statements
    # (a 10,000-row import reached its reps in 182 s with one; with two, fewer than 2,000 of its
    # leads were routed after four minutes).
    "EVENT_BATCH_SIZE": "100",
    "EVENT_BATCH_CONCURRENCY": "1",
    "BACKGROUND_EVENT_YIELD": "2",
    # The outbox relay publishes a committed event at once; this is how often it sweeps for entries
    # a crashed process left behind.
    "OUTBOX_POLL_SECONDS": "1.0",
    "MAX_WORKERS": "32",
    # Largest gRPC request message a service accepts (grpcio's default); bigger is RESOURCE_EXHAUSTED.
    "GRPC_MAX_RECEIVE_MESSAGE_BYTES": str(4 * 1024 * 1024),
    # Scoring: a lead at or above this total is marketing-qualified.
    "SCORING_MQL_THRESHOLD": "60",  # of the built-in model, until an admin stores one
    # Scoring's clock: how often decay, rescore jobs and the retrain schedule are checked (seconds),
    # and how often the win model is retrained from new outcomes (hours; 0 turns it off).
    "SCORING_TIMER_SECONDS": "5",
    "WIN_MODEL_RETRAIN_HOURS": "24",
    # Capture's public HTTP (forms, webhooks, beacon). The address the world reaches it at, for form
    # links and QR codes; empty means http://127.0.0.1:<capture HTTP port>.
    "CAPTURE_PUBLIC_URL": "",
    # "source=secret" pairs separated by commas: the HMAC-SHA256 key of each webhook source.
    "WEBHOOK_SECRETS": "",
    # Proxies (ingress) in front of the public endpoints; the client address is taken that many
    # entries from the end of X-Forwarded-For. 0 trusts no header.
    "TRUSTED_PROXY_HOPS": "0",
    # Requests per minute per client address.
    "FORM_RATE_LIMIT_PER_MINUTE": "20",
    "BEACON_RATE_LIMIT_PER_MINUTE": "300",
    "WEBHOOK_RATE_LIMIT_PER_MINUTE": "600",
    # Largest public form / webhook / beacon body.
    "PUBLIC_MAX_BODY_BYTES": str(64 * 1024),
    # Largest file ImportLeadFile accepts, and all files of one ImportOpportunities together.
    "IMPORT_MAX_BYTES": str(256 * 1024 * 1024),
    # Routing: the first response to an assigned lead is due this many business minutes after
    # assignment (of the built-in policy, until an admin stores one).
    "SLA_FIRST_RESPONSE_MINUTES": "120",
    # Routing's clock: how often SLA warnings, breaches, escalations and the fallback queue are checked.
    "ROUTING_TIMER_SECONDS": "5",
    # Reporting's clock: how often a projection rebuild advances.
    "REPORTING_TIMER_SECONDS": "2",
    # How often reporting recomputes its business gauges (open pipeline by stage, won value).
    "REPORTING_GAUGE_SECONDS": "60",
    # The event stream (leadflow.events.v1, served by reporting): how long events stay replayable,
    # how often an idle stream gets a keepalive, how many streams one replica holds open (each holds
    # one of its MAX_WORKERS), and how often a subscriber looks for events another replica stored.
    "EVENT_STREAM_RETENTION_DAYS": "30",
    "EVENT_STREAM_KEEPALIVE_SECONDS": "15",
    "EVENT_STREAM_MAX_SUBSCRIBERS": "10",
    "EVENT_STREAM_POLL_SECONDS": "1.0",
    # Webhook subscriptions to the stream: how often reporting looks for events to deliver, how long a
    # receiver has to answer, the first retry's wait (doubling up to an hour), and the attempts before
    # a delivery is dead-lettered.
    "WEBHOOK_POLL_SECONDS": "1.0",
    "WEBHOOK_TIMEOUT_SECONDS": "10",
    "WEBHOOK_RETRY_SECONDS": "10",
    "WEBHOOK_MAX_ATTEMPTS": "8",
    # The questions QualifyLead needs answered to qualify a lead (BANT by default), comma-separated.
    "QUALIFICATION_FRAMEWORK": "budget,authority,need,timeline",
    # Largest file UploadAttachment accepts.
    "ATTACHMENT_MAX_BYTES": str(25 * 1024 * 1024),
    # HMAC-SHA256 key signing notifications posted to team webhooks (X-Leadflow-Signature); empty: unsigned.
    "NOTIFY_WEBHOOK_SECRET": "",
    # The HTTP/JSON gateway and web console (not a nameko service: see services/gateway).
    "GATEWAY_HTTP_PORT": "8000",
    # Built console files it serves at /; empty means console/dist of this checkout.
    "GATEWAY_CONSOLE_DIR": "",
    # Browser origins (other frontends) allowed to call the API cross-site, comma-separated; empty: none.
    "GATEWAY_CORS_ORIGINS": "",
    # Largest JSON request body; the services' own 4 MiB gRPC limit stays the real bound behind it.
    "GATEWAY_MAX_BODY_BYTES": str(1024 * 1024),
    # Deadline the gateway gives each gRPC call it makes.
    "GATEWAY_RPC_TIMEOUT_SECONDS": "15",
}


def _env(name: str) -> str:
    return os.environ.get(name, DEFAULTS.get(name, ""))


def port_for(service: str, kind: str) -> int:
    """Port of a service's gRPC or HTTP listener, overridable as e.g. CAPTURE_GRPC_PORT."""
    default = getattr(SERVICE_PORTS[service], kind)
    return int(os.environ.get(f"{service.upper()}_{kind.upper()}_PORT", default))


def gateway_config() -> dict:
    """The gateway's settings; backends' addresses are LEADFLOW_<SERVICE>_ADDRESS as for every client."""
    return {
        "HTTP_BIND_HOST": _env("HTTP_BIND_HOST"),
        "GATEWAY_HTTP_PORT": int(_env("GATEWAY_HTTP_PORT")),
        "GATEWAY_CONSOLE_DIR": _env("GATEWAY_CONSOLE_DIR"),
        "GATEWAY_CORS_ORIGINS": [o.strip() for o in _env("GATEWAY_CORS_ORIGINS").split(",") if o.strip()],
        "GATEWAY_MAX_BODY_BYTES": int(_env("GATEWAY_MAX_BODY_BYTES")),
        "GATEWAY_RPC_TIMEOUT_SECONDS": float(_env("GATEWAY_RPC_TIMEOUT_SECONDS")),
        "LEADFLOW_AUTH_TOKENS": _env("LEADFLOW_AUTH_TOKENS"),
        "LOG_LEVEL": _env("LOG_LEVEL"),
    }


def database_name(prefix: str, service: str) -> str:
    return f"{prefix}_{service}"


def service_config(service: str) -> dict:
    """The nameko config dict for one service process."""
    return {
        "AMQP_URI": _env("AMQP_URI"),
        "MONGODB_URI": _env("MONGODB_URI"),
        "MONGODB_DB_PREFIX": _env("MONGODB_DB_PREFIX"),
        "REDIS_URI": _env("REDIS_URI"),
        "REDIS_KEY_PREFIX": _env("REDIS_KEY_PREFIX"),
        "GRPC_BIND_HOST": _env("GRPC_BIND_HOST"),
        "GRPC_BIND_PORT": port_for(service, "grpc"),
        "WEB_SERVER_ADDRESS": f"{_env('HTTP_BIND_HOST')}:{port_for(service, 'http')}",
        "LEADFLOW_AUTH_TOKENS": _env("LEADFLOW_AUTH_TOKENS"),
        "LOG_LEVEL": _env("LOG_LEVEL"),
        "EVENT_MAX_ATTEMPTS": int(_env("EVENT_MAX_ATTEMPTS")),
        "EVENT_BATCH_SIZE": int(_env("EVENT_BATCH_SIZE")),
        "EVENT_BATCH_CONCURRENCY": int(_env("EVENT_BATCH_CONCURRENCY")),
        "BACKGROUND_EVENT_YIELD": float(_env("BACKGROUND_EVENT_YIELD")),
        "OUTBOX_POLL_SECONDS": float(_env("OUTBOX_POLL_SECONDS")),
        "max_workers": int(_env("MAX_WORKERS")),
        "GRPC_MAX_RECEIVE_MESSAGE_BYTES": int(_env("GRPC_MAX_RECEIVE_MESSAGE_BYTES")),
        "SCORING_MQL_THRESHOLD": int(_env("SCORING_MQL_THRESHOLD")),
        "SCORING_TIMER_SECONDS": float(_env("SCORING_TIMER_SECONDS")),
        "WIN_MODEL_RETRAIN_HOURS": float(_env("WIN_MODEL_RETRAIN_HOURS")),
        "SLA_FIRST_RESPONSE_MINUTES": int(_env("SLA_FIRST_RESPONSE_MINUTES")),
        "ROUTING_TIMER_SECONDS": float(_env("ROUTING_TIMER_SECONDS")),
        "REPORTING_TIMER_SECONDS": float(_env("REPORTING_TIMER_SECONDS")),
        "REPORTING_GAUGE_SECONDS": float(_env("REPORTING_GAUGE_SECONDS")),
        "EVENT_STREAM_RETENTION_DAYS": float(_env("EVENT_STREAM_RETENTION_DAYS")),
        "EVENT_STREAM_KEEPALIVE_SECONDS": float(_env("EVENT_STREAM_KEEPALIVE_SECONDS")),
        "EVENT_STREAM_MAX_SUBSCRIBERS": int(_env("EVENT_STREAM_MAX_SUBSCRIBERS")),
        "EVENT_STREAM_POLL_SECONDS": float(_env("EVENT_STREAM_POLL_SECONDS")),
        "WEBHOOK_POLL_SECONDS": float(_env("WEBHOOK_POLL_SECONDS")),
        "WEBHOOK_TIMEOUT_SECONDS": float(_env("WEBHOOK_TIMEOUT_SECONDS")),
        "WEBHOOK_RETRY_SECONDS": float(_env("WEBHOOK_RETRY_SECONDS")),
        "WEBHOOK_MAX_ATTEMPTS": int(_env("WEBHOOK_MAX_ATTEMPTS")),
        "NOTIFY_WEBHOOK_SECRET": _env("NOTIFY_WEBHOOK_SECRET"),
        "ATTACHMENT_MAX_BYTES": int(_env("ATTACHMENT_MAX_BYTES")),
        "QUALIFICATION_FRAMEWORK": _env("QUALIFICATION_FRAMEWORK"),
        "CAPTURE_PUBLIC_URL": _env("CAPTURE_PUBLIC_URL") or f"http://127.0.0.1:{port_for('capture', 'http')}",
        "WEBHOOK_SECRETS": _env("WEBHOOK_SECRETS"),
        "TRUSTED_PROXY_HOPS": int(_env("TRUSTED_PROXY_HOPS")),
        "FORM_RATE_LIMIT_PER_MINUTE": int(_env("FORM_RATE_LIMIT_PER_MINUTE")),
        "BEACON_RATE_LIMIT_PER_MINUTE": int(_env("BEACON_RATE_LIMIT_PER_MINUTE")),
        "WEBHOOK_RATE_LIMIT_PER_MINUTE": int(_env("WEBHOOK_RATE_LIMIT_PER_MINUTE")),
        "PUBLIC_MAX_BODY_BYTES": int(_env("PUBLIC_MAX_BODY_BYTES")),
        "IMPORT_MAX_BYTES": int(_env("IMPORT_MAX_BYTES")),
        # nameko's own serializer config keys use the defaults (JSON).
    }
