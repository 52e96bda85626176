#!/usr/bin/env python3
"""Start, break and stop a private three-node RabbitMQ cluster on this machine.

Each node is a private node of rabbitmq_node.py (own name, data folder, AMQP,
management and distribution ports); the three share one private epmd, so they
find each other, and one Erlang cookie, so they trust each other. Nodes 2 and
3 join node 1; the cluster is named amqp-lab-test.

    python3 scripts/rabbitmq_cluster.py start --dir /tmp/lab-cluster [--version 4.0]
    python3 scripts/rabbitmq_cluster.py stop-node 2 --dir /tmp/lab-cluster   # the broker on node 2 goes down
    python3 scripts/rabbitmq_cluster.py start-node 2 --dir /tmp/lab-cluster  # and comes back
    python3 scripts/rabbitmq_cluster.py stop --dir /tmp/lab-cluster

`start` prints AMQP_URL and AMQP_LAB_MANAGEMENT_URL (every node's, comma
separated: amqp-lab fails over between them) for `eval`. Runs as root.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import rabbitmq_node
from rabbitmq_node import PrivateNode

CLUSTER_NAME = "amqp-lab-test"
SIZE = 3
STATE_FILE = "cluster.json"


@dataclass(frozen=True)
class PrivateCluster:
    nodes: tuple[PrivateNode, ...]

    @property
    def amqp_url(self) -> str:
        return ",".join(node.amqp_url for node in self.nodes)

    @property
    def management_url(self) -> str:
        """Every node's management API, node 1 first: the lab moves on to the next when one stops answering."""
        return ",".join(node.management_url for node in self.nodes)

    def node(self, number: int) -> PrivateNode:
        """Node 1, 2 or 3."""
        if not 1 <= number <= len(self.nodes):
            raise RuntimeError(f"no node {number}: the cluster has nodes 1 to {len(self.nodes)}")
        return self.nodes[number - 1]

    def stop_node(self, number: int) -> None:
        """Stop the broker on one node, as a crash would: its clients lose their connections."""
        self.node(number).stop_app()

    def start_node(self, number: int) -> None:
        self.node(number).start_app()

    def running(self) -> list[str]:
        """The nodes node 1 reports running."""
        result = self.nodes[0].ctl("cluster_status", "--formatter", "json")
        rabbitmq_node.checked(result, "cluster_status")
        return list(json.loads(result.stdout)["running_nodes"])


def start(version: str = "3.10", prefix: str = "amqplab-cluster") -> PrivateCluster:
    """Boot the three nodes side by side, then join nodes 2 and 3 to node 1."""
    [epmd_port] = rabbitmq_node.free_ports(1)
    cookie = secrets.token_hex(16)
    names = [f"{prefix}-{number}@localhost" for number in range(1, SIZE + 1)]
    with ThreadPoolExecutor(SIZE) as pool:
        booting = [pool.submit(rabbitmq_node.start, name, version, None, None, epmd_port, cookie) for name in names]
        try:
            wait(booting)
        except BaseException:  # interrupted (a test's timeout on a loaded machine): stop what still comes up
            wait(booting)
            stop(PrivateCluster(tuple(f.result() for f in booting if f.exception() is None)))
            raise
    started = [future.exception() or future.result() for future in booting]
    nodes = tuple(node for node in started if isinstance(node, PrivateNode))
    cluster = PrivateCluster(nodes)
    failures = [str(error) for error in started if isinstance(error, BaseException)]
    try:
        if failures:
            raise RuntimeError("; ".join(failures))
        first = nodes[0]
        for node in nodes[1:]:
            rabbitmq_node.checked(node.ctl("stop_app"), "stop_app")
            rabbitmq_node.checked(node.ctl("join_cluster", first.name), "join_cluster")
            node.start_app()
        rabbitmq_node.checked(first.ctl("set_cluster_name", CLUSTER_NAME), "set_cluster_name")
    except BaseException:  # a timeout's exception included: no node outlives a cluster that did not start
        stop(cluster)
        raise
    return cluster


def stop(cluster: PrivateCluster) -> None:
    """Stop every node (the last one stops the shared epmd) and remove their folders."""
    for index, node in enumerate(cluster.nodes):
        rabbitmq_node.stop(node, last=index == len(cluster.nodes) - 1)


def save(cluster: PrivateCluster, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STATE_FILE).write_text(json.dumps([asdict(node) for node in cluster.nodes]))


def load(folder: Path) -> PrivateCluster:
    state = folder / STATE_FILE
    if not state.exists():
        raise RuntimeError(f"no cluster state in {folder}: give the --dir that start was given")
    return PrivateCluster(tuple(PrivateNode(**node) for node in json.loads(state.read_text())))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "stop-node", "start-node"])
    parser.add_argument("number", nargs="?", type=int, help="the node (1-3) for stop-node and start-node")
    parser.add_argument("--dir", type=Path, help="where start keeps the cluster's state (default: a new folder)")
    parser.add_argument("--version", choices=rabbitmq_node.VERSIONS, default="3.10", help="default: %(default)s")
    args = parser.parse_args()
    if args.action in ("stop-node", "start-node") and args.number is None:
        parser.error(f"{args.action} needs the node's number, 1 to {SIZE}")
    if args.action != "start" and args.dir is None:
        parser.error(f"{args.action} needs --dir, the folder start was given")
    try:
        if args.action == "start":
            folder = args.dir or Path(tempfile.mkdtemp(prefix="amqp-lab-cluster-"))
            cluster = start(args.version)
            save(cluster, folder)
            print(f"AMQP_URL={cluster.amqp_url}")
            print(f"AMQP_LAB_MANAGEMENT_URL={cluster.management_url}")
            print(f"# stop with: {sys.argv[0]} stop --dir {folder}")
        elif args.action == "stop":
            stop(load(args.dir))
            (args.dir / STATE_FILE).unlink()
        elif args.action == "stop-node":
            load(args.dir).stop_node(args.number)
        else:
            load(args.dir).start_node(args.number)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"rabbitmq_cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
