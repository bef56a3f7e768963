"""Brings up what Leadflow runs on for a developer machine and the tests: RabbitMQ (with the
management plugin), Redis, and an embedded SecantusDB when ``MONGODB_URI`` is not set."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = REPO / ".leadflow"


class InfrastructureError(RuntimeError):
    pass


def die_with_parent() -> None:
    """``preexec_fn`` for child processes: the kernel sends SIGTERM when the parent dies, so a
    crashed or killed ``make run`` (or test session) leaves no orphaned services behind."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the supervisor's own cleanup still applies


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.2)
    raise InfrastructureError(f"{what} did not open {host}:{port} within {seconds:.0f} s")


_HANDED_OUT_PORTS: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before by this process: the OS may offer a just-released
    port again, and two services of one platform (started later) must never be given the same one."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT_PORTS:
            _HANDED_OUT_PORTS.add(port)
            return port


def _host_port(uri: str, default_port: int) -> tuple[str, int]:
    parsed = urlparse(uri)
    return parsed.hostname or "127.0.0.1", parsed.port or default_port


def _is_root_on_debian() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def _apt_install(*packages: str) -> None:
    print(f"installing {' '.join(packages)} with apt-get ...", flush=True)
    subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def ensure_rabbitmq(amqp_uri: str) -> None:
    host, port = _host_port(amqp_uri, 5672)
    local = host in ("127.0.0.1", "localhost", "::1")
    if not port_open(host, port):
        if not local:
            raise InfrastructureError(f"RabbitMQ at {host}:{port} (AMQP_URI) does not answer")
        if shutil.which("rabbitmq-server") is None:
            if not _is_root_on_debian():
                raise InfrastructureError(
                    "RabbitMQ is not installed; run: sudo apt-get install -y rabbitmq-server")
            _apt_install("rabbitmq-server")
        print("starting RabbitMQ ...", flush=True)
        subprocess.run(["rabbitmq-server", "-detached"], check=False)
        wait_for_port(host, port, 90, "RabbitMQ")
    if local:
        enable_rabbitmq_management()


def enable_rabbitmq_management() -> None:
    """The test suite creates a throw-away vhost per run through the management API."""
    if port_open("127.0.0.1", 15672):
        return
    if shutil.which("rabbitmq-plugins") is None:
        raise InfrastructureError("rabbitmq-plugins not found; run: rabbitmq-plugins enable rabbitmq_management")
    subprocess.run(["rabbitmq-plugins", "enable", "rabbitmq_management"], check=True, stdout=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", 15672, 60, "RabbitMQ management plugin")


def ensure_redis(redis_uri: str) -> None:
    host, port = _host_port(redis_uri, 6379)
    if port_open(host, port):
        return
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise InfrastructureError(f"Redis at {host}:{port} (REDIS_URI) does not answer")
    if shutil.which("redis-server") is None:
        if not _is_root_on_debian():
            raise InfrastructureError("Redis is not installed; run: sudo apt-get install -y redis-server")
        _apt_install("redis-server")
    print("starting Redis ...", flush=True)
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port),
                    "--save", "", "--appendonly", "no"], check=True, stdout=subprocess.DEVNULL)
    wait_for_port(host, port, 30, "Redis")


# Business-card OCR: Tesseract with its Chinese and English models, and fonts the tests and the demo
# render sample cards with (Debian package -> a file it installs).
OCR_PACKAGES = {
    "tesseract-ocr": "/usr/bin/tesseract",
    "tesseract-ocr-eng": "/usr/share/tesseract-ocr/5/tessdata/eng.traineddata",
    "tesseract-ocr-chi-sim": "/usr/share/tesseract-ocr/5/tessdata/chi_sim.traineddata",
    "fonts-wqy-zenhei": "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "fonts-dejavu-core": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
}


def _ensure_packages(packages: dict, needed_by: str) -> None:
    """Install the Debian packages whose file is missing (as root), or say which command would."""
    missing = [package for package, path in packages.items() if not Path(path).exists()]
    if not missing:
        return
    if not _is_root_on_debian():
        raise InfrastructureError(f"{needed_by} needs: sudo apt-get install -y {' '.join(missing)}")
    _apt_install("--no-install-recommends", *missing)


def ensure_ocr() -> None:
    _ensure_packages(OCR_PACKAGES, "business-card OCR")


# The console's browser tests drive Debian's Chromium (never a browser a test tool downloads). Its
# Chinese pages render with the CJK font the OCR packages above already bring (wqy-zenhei).
BROWSER_PACKAGES = {"chromium": "/usr/bin/chromium"}


def ensure_browser() -> None:
    _ensure_packages(BROWSER_PACKAGES, "the console's browser test")


class EmbeddedMongo:
    """SecantusDB (MongoDB wire protocol over WiredTiger) as a child process."""

    def __init__(self, data_dir: Path | str, port: int, log_path: Path, oplog: bool = False, options: tuple = ()):
        self.data_dir, self.port, self.log_path = str(data_dir), port, log_path
        # Without an oplog by default (--standalone: no replica-set advertisement, so SecantusDB writes
        # none). Leadflow reads no change streams, and the oplog cost every modified document a BSON
        # encode and a table write, and pruning it ran inside whichever transaction's commit crossed
        # the prune mark, where two concurrent prunes made one commit fail (see test_store_conflicts).
        # Transactions work the same either way; a real MongoDB still has to be a replica set.
        self.options = (() if oplog else ("--standalone",)) + tuple(options)  # further secantusd-py flags
        self.process = None

    @property
    def uri(self) -> str:
        # retryWrites=false: SecantusDB 0.7.0b3 keeps a record of every retryable write and, past
        # 10,000 of them, sorts them all on each write, so writes slow from ~0.6 ms to ~9 ms after
        # the first few thousand leads. Leadflow's writes are transactional or idempotent, so the
        # driver's one automatic retry is not needed here; a real MongoDB keeps the default.
        return f"mongodb://127.0.0.1:{self.port}/?retryWrites=false"

    def start(self) -> "EmbeddedMongo":
        executable = Path(sys.executable).with_name("secantusd-py")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(executable), "--host", "127.0.0.1", "--port", str(self.port), "--storage-path", self.data_dir,
             "--log-level", "WARNING", *self.options], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent)
        try:
            wait_for_port("127.0.0.1", self.port, 60, "SecantusDB")
        except InfrastructureError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 15) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
