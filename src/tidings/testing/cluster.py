"""A private three-node (or ``size``-node) NATS JetStream cluster for failover tests.

Each node is a ``nats-server`` started by ``servers.start_nats`` in a
directory of its own (``directory/n<i>``): a client port, a cluster (route)
port and an HTTP monitoring port on 127.0.0.1, a ``server_name``, JetStream
on file storage with ``sync_interval: always``, and routes to every node.
Nodes are stopped, killed and restarted by their PID only, one at a time, on
the same ports and store, so a test can take a node away and bring it back.

``ready`` waits until every running node's ``/healthz`` says JetStream is
current (a meta leader is elected and the node caught up), which takes a
second or two after start: creating a stream before that fails.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tidings.testing.servers import HOST, ServerProcess, free_port, start_nats

CLUSTER_NAME = "tidings-test"


@dataclass
class NatsNode:
    """One node's fixed addresses and its current process (None while it is down)."""

    name: str
    directory: Path
    port: int
    route_port: int
    http_port: int
    routes: list[int]
    process: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def config(self) -> str:
        routes = ", ".join(f"nats-route://{HOST}:{port}" for port in self.routes)
        return (
            f'server_name: "{self.name}"\n'
            f'http: "{HOST}:{self.http_port}"\n'
            f'cluster {{\n  name: "{CLUSTER_NAME}"\n  listen: "{HOST}:{self.route_port}"\n'
            f"  routes: [{routes}]\n}}\n"
        )

    def start(self) -> ServerProcess:
        self.process = start_nats(
            self.directory, port=self.port, sync_always=True, extra_config=self.config()
        )
        return self.process

    def healthy(self) -> bool:
        try:
            url = f"{self.monitor_url}/healthz"
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return bool(json.loads(response.read()).get("status") == "ok")
        except (OSError, ValueError, urllib.error.URLError):
            return False


@dataclass
class NatsCluster:
    """Nodes of one cluster; ``url`` names them all, so a client fails over between them."""

    nodes: list[NatsNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "nats://" + ",".join(f"{HOST}:{node.port}" for node in self.nodes)

    def node(self, name: str) -> NatsNode:
        return next(node for node in self.nodes if node.name == name)

    def kill(self, name: str) -> None:
        """SIGKILL one node (by its PID): a crash, mid-write."""
        process = self.node(name).process
        if process is not None:
            process.kill()
        self.node(name).process = None

    def stop(self, name: str) -> None:
        """SIGTERM one node: a graceful shutdown."""
        process = self.node(name).process
        if process is not None:
            process.stop()
        self.node(name).process = None

    def restart(self, name: str) -> ServerProcess:
        """Start a stopped or killed node again, on its ports and its store."""
        return self.node(name).start()

    def ready(self, timeout: float = 30.0) -> None:
        """Wait until every running node reports JetStream healthy; ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(node.healthy() for node in self.nodes if node.process is not None):
                return
            time.sleep(0.05)
        raise TimeoutError(f"the NATS cluster was not healthy within {timeout} s")

    def close(self) -> None:
        """Kill every node this cluster started."""
        for node in self.nodes:
            if node.process is not None:
                node.process.kill()
                node.process = None


def start_nats_cluster(directory: Path, size: int = 3, *, timeout: float = 30.0) -> NatsCluster:
    """``size`` nats-server nodes routed to each other, started and healthy (see the module docstring)."""
    if size < 1:
        raise ValueError(f"a cluster has at least one node, not {size}")
    route_ports = [free_port() for _ in range(size)]
    cluster = NatsCluster(
        [
            NatsNode(
                name=f"n{index + 1}",
                directory=directory / f"n{index + 1}",
                port=free_port(),
                route_port=route_ports[index],
                http_port=free_port(),
                routes=[port for port in route_ports if port != route_ports[index]],
            )
            for index in range(size)
        ]
    )
    try:
        for node in cluster.nodes:
            node.start()
        cluster.ready(timeout)
    except BaseException:
        cluster.close()
        raise
    return cluster
