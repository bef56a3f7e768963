"""Starts, watches and stops Leadflow service processes (for ``make run``, e2e tests and the benchmark),
and the HTTP/JSON gateway in front of them."""
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from services.common.settings import DEFAULTS, SERVICE_NAMES, port_for
from services.devstack.infrastructure import REPO, InfrastructureError, die_with_parent, free_port


def answers_ok(url: str) -> bool:
    """Whether ``url`` answers 200 within two seconds (a probe: anything else, or nothing, is no)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class ServiceProcess:
    """One service process. nameko-grpc may ignore SIGTERM while connections are open, so stopping
    escalates to SIGKILL after a grace period."""

    def __init__(self, service: str, env: dict, log_path: Path, replica: int = 0):
        self.service, self.env, self.log_path, self.replica = service, env, log_path, replica
        self.process = None

    @property
    def label(self) -> str:
        return f"{self.service}#{self.replica}"

    @property
    def http_port(self) -> int:
        return int(self.env[f"{self.service.upper()}_HTTP_PORT"])

    @property
    def grpc_port(self) -> int:
        return int(self.env[f"{self.service.upper()}_GRPC_PORT"])

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "services.common.runner", self.service]

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command,
                                        env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True, preexec_fn=die_with_parent)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        return answers_ok(f"http://127.0.0.1:{self.http_port}/readyz")

    def kill9(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, grace: float = 10.0) -> None:
        if not self.alive():
            return
        self.process.terminate()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill9()


class GatewayProcess(ServiceProcess):
    """The gateway: an ASGI app, not a nameko service; HTTP only, and clients of the five services."""

    def __init__(self, env: dict, log_path: Path):
        super().__init__("gateway", env, log_path)

    @property
    def grpc_port(self) -> int:
        raise AttributeError("the gateway has no gRPC port")

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "services.gateway"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


class Platform:
    """The five services (optionally several replicas each) against given infrastructure."""

    def __init__(self, base_env: dict, log_dir: Path, services=SERVICE_NAMES, replicas: int = 1,
                 any_free_port: bool = False, gateway: bool = False):
        """With ``any_free_port`` (tests, benchmark) every process listens on ports the OS picks, so a
        running ``make run`` is never disturbed; otherwise on the configured ports. ``gateway`` adds
        the HTTP/JSON gateway, pointed at the first replica of each service."""
        self.processes = []
        self.gateway = None
        for service in services:
            for replica in range(replicas):
                env = {**os.environ, **base_env, "PYTHONUNBUFFERED": "1"}
                for kind in ("grpc", "http"):
                    if any_free_port or replica:
                        port = free_port()
                    else:
                        port = port_for(service, kind)
                    env[f"{service.upper()}_{kind.upper()}_PORT"] = str(port)
                self.processes.append(ServiceProcess(service, env, log_dir / f"{service}-{replica}.log", replica))
        if gateway:
            env = {**os.environ, **base_env, "PYTHONUNBUFFERED": "1",
                   "GATEWAY_HTTP_PORT": str(free_port() if any_free_port else
                                            int(os.environ.get("GATEWAY_HTTP_PORT", DEFAULTS["GATEWAY_HTTP_PORT"]))),
                   **{f"LEADFLOW_{s.upper()}_ADDRESS": a for s, a in self.addresses().items()}}
            self.gateway = GatewayProcess(env, log_dir / "gateway.log")
            self.processes.append(self.gateway)

    def start(self) -> "Platform":
        for process in self.processes:
            process.start()
        return self

    def of(self, service: str) -> list[ServiceProcess]:
        return [p for p in self.processes if p.service == service]

    def addresses(self) -> dict:
        """gRPC address of each service's first replica, for LeadflowClient."""
        return {p.service: f"127.0.0.1:{p.grpc_port}" for p in reversed(self.processes)
                if not isinstance(p, GatewayProcess)}

    def wait_ready(self, timeout: float = 90.0, processes=None) -> None:
        pending = list(processes or self.processes)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for process in list(pending):
                if not process.alive():
                    raise InfrastructureError(
                        f"{process.label} exited with code {process.process.returncode}; see {process.log_path}")
                if process.ready():
                    pending.remove(process)
            time.sleep(0.2)
        if pending:
            raise InfrastructureError(f"not ready after {timeout:.0f} s: {', '.join(p.label for p in pending)}")

    def stop(self) -> None:
        for process in self.processes:
            if process.alive():
                process.process.terminate()
        for process in self.processes:
            process.stop()
