"""``make run``: bring up the whole platform on its embedded defaults, show it working, stay up.

    python -m services.devstack run
"""
import fcntl
import os
import signal
import sys
import time

from services.cli.client import LeadflowClient
from services.common.settings import DEFAULTS, SERVICE_NAMES, port_for
from services.devstack import credentials, infrastructure
from services.devstack.demo import run_demo
from services.devstack.infrastructure import STATE_DIR, EmbeddedMongo, InfrastructureError
from services.devstack.supervisor import Platform

MONGO_PORT = int(os.environ.get("LEADFLOW_MONGO_PORT", "27017"))


def _acquire_run_lock():
    STATE_DIR.mkdir(exist_ok=True)
    lock = open(STATE_DIR / "run.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        pid = lock.read().strip() or "?"
        sys.exit(f"Leadflow is already running from this folder (pid {pid}). Use it (leadflow health), "
                 f"or stop it with Ctrl-C in its terminal (or: kill {pid}) before starting another.")
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def _stop_on_sigterm() -> None:
    """SIGTERM (an operator, a CI timeout) stops everything as cleanly as Ctrl-C does."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)


def run() -> None:
    lock = _acquire_run_lock()  # noqa: F841 — held for the life of the process
    _stop_on_sigterm()
    env = {}
    amqp_uri = os.environ.get("AMQP_URI", DEFAULTS["AMQP_URI"])
    redis_uri = os.environ.get("REDIS_URI", DEFAULTS["REDIS_URI"])
    mongo = None
    try:
        infrastructure.ensure_rabbitmq(amqp_uri)
        infrastructure.ensure_redis(redis_uri)
        infrastructure.ensure_ocr()
        if "MONGODB_URI" not in os.environ:
            if infrastructure.port_open("127.0.0.1", MONGO_PORT):
                raise InfrastructureError(
                    f"port {MONGO_PORT} is taken by another process; set MONGODB_URI to use that server, "
                    f"or LEADFLOW_MONGO_PORT to start the embedded one elsewhere")
            print(f"starting embedded SecantusDB on 127.0.0.1:{MONGO_PORT} (data in .leadflow/mongo) ...",
                  flush=True)
            mongo = EmbeddedMongo(STATE_DIR / "mongo", MONGO_PORT, STATE_DIR / "logs" / "secantusdb.log").start()
            env["MONGODB_URI"] = mongo.uri
        tokens = credentials.load_or_create(STATE_DIR / "credentials.json")
        if "LEADFLOW_AUTH_TOKENS" not in os.environ:
            env["LEADFLOW_AUTH_TOKENS"] = credentials.auth_table(tokens)

        platform = Platform(env, STATE_DIR / "logs", gateway=True).start()
        print("starting capture, scoring, routing, opportunity, reporting and the gateway ...", flush=True)
        started = time.monotonic()
        platform.wait_ready()
        print(f"all five services and the gateway ready in {time.monotonic() - started:.1f} s", flush=True)
    except InfrastructureError as exc:
        if mongo:
            mongo.stop()
        sys.exit(f"cannot start Leadflow: {exc}")

    try:
        if os.environ.get("DEMO", "1") != "0":
            with LeadflowClient(tokens["admin"]) as client:
                run_demo(client, STATE_DIR)
        print_endpoints(platform, tokens)
        supervise(platform)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping Leadflow ...", flush=True)
        platform.stop()
        if mongo:
            mongo.stop()
        print("stopped.")


def print_endpoints(platform: Platform, tokens: dict) -> None:
    console = platform.gateway.url
    print("\nLeadflow is up. Press Ctrl-C to stop.\n")
    print(f"  web console  {console}/")
    # Development tokens only (made on first run, kept in .leadflow/): one click logs in as each role.
    for who in ("manager.wang", "li.na", "admin"):
        print(f"    log in as {who:13} {console}/#/login?token={tokens[who]}")
    print(f"  HTTP API     {console}/api/v1/...   OpenAPI: {console}/openapi.json\n")
    print(f"  {'service':12} {'gRPC':18} {'health / metrics'}")
    for service in SERVICE_NAMES:
        http = f"http://127.0.0.1:{port_for(service, 'http')}"
        print(f"  {service:12} 127.0.0.1:{port_for(service, 'grpc'):<8} {http}/readyz  {http}/metrics")
    print("\n  tokens: .leadflow/credentials.json   logs: .leadflow/logs/")
    print("  try:    .venv/bin/leadflow health   .venv/bin/leadflow funnel   .venv/bin/leadflow --help\n",
          flush=True)


def supervise(platform: Platform) -> None:
    """Stay up; restart a service that dies, as Kubernetes would."""
    while True:
        time.sleep(1)
        for process in platform.processes:
            if not process.alive():
                print(f"{process.label} exited (code {process.process.returncode}); restarting, "
                      f"see {process.log_path}", flush=True)
                process.start()


def prepare_tests() -> None:
    """What the test suite needs running before it starts: RabbitMQ with its management plugin and
    Redis. (Each test session starts its own embedded SecantusDB and RabbitMQ vhost.)"""
    try:
        infrastructure.ensure_rabbitmq(os.environ.get("AMQP_URI", DEFAULTS["AMQP_URI"]))
        infrastructure.ensure_redis(os.environ.get("REDIS_URI", DEFAULTS["REDIS_URI"]))
        infrastructure.ensure_ocr()
        infrastructure.ensure_browser()
    except InfrastructureError as exc:
        sys.exit(f"cannot prepare the test infrastructure: {exc}")


COMMANDS = {"run": run, "prepare-tests": prepare_tests}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in COMMANDS:
        sys.exit(f"usage: python -m services.devstack {{{','.join(COMMANDS)}}}")
    COMMANDS[argv[0]]()


if __name__ == "__main__":
    main()
