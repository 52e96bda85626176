#!/usr/bin/env python3
"""Start and stop a private RabbitMQ node that never touches the standard ports.

The node gets its own name, data folder, free loopback ports, the management
plugin and a 1 s statistics interval, so the test suite, the benchmarks and
the screenshot script can each run one beside any broker the machine already
has.

    python3 scripts/rabbitmq_node.py start --dir /tmp/lab-node   # prints the URLs
    python3 scripts/rabbitmq_node.py stop --dir /tmp/lab-node

`start` prints shell lines (AMQP_URL=..., AMQP_LAB_MANAGEMENT_URL=...) that
`eval` can take.  Works as root through Debian's rabbitmq-server: the server
script under /usr/lib/rabbitmq/bin skips the su wrapper.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
STATE_FILE = "node.json"


@dataclass(frozen=True)
class PrivateNode:
    """Where a running private node lives and how to reach it."""

    name: str
    base_dir: str
    amqp_port: int
    management_port: int
    dist_port: int
    epmd_port: int

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}/"

    def env(self) -> dict[str, str]:
        """The environment every rabbitmq command for this node needs."""
        base = Path(self.base_dir)
        return {
            **os.environ,
            "HOME": str(base),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            # A private epmd, so nothing is shared with (or left running for) other nodes.
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        }

    def ctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.name, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop_app(self) -> None:
        """Stop the broker inside the node: clients lose it as in an outage."""
        _checked(self.ctl("stop_app"), "stop_app")

    def start_app(self) -> None:
        _checked(self.ctl("start_app"), "start_app")
        _checked(self.ctl("await_startup"), "await_startup")


def installed() -> bool:
    return (RABBITMQ_BIN / "rabbitmq-server").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _checked(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {what} failed: {result.stdout}{result.stderr}".strip())


def start(base_dir: Path, name: str = "amqplab-test@localhost") -> PrivateNode:
    """Boot a node under base_dir and wait until it accepts connections."""
    if not installed():
        raise RuntimeError("rabbitmq-server is not installed (apt-get install -y rabbitmq-server)")
    base_dir.mkdir(parents=True, exist_ok=True)
    node = PrivateNode(
        name=name,
        base_dir=str(base_dir.resolve()),
        amqp_port=free_port(),
        management_port=free_port(),
        dist_port=free_port(),
        epmd_port=free_port(),
    )
    (base_dir / "enabled_plugins").write_text("[rabbitmq_management].\n")
    (base_dir / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}\n"
        f"management.tcp.port = {node.management_port}\n"
        "management.tcp.ip = 127.0.0.1\n"
        "loopback_users = none\n"
        "collect_statistics_interval = 1000\n"
    )
    # Keeps the node's distribution listener on loopback as well.
    (base_dir / "advanced.config").write_text("[{kernel, [{inet_dist_use_interface, {127,0,0,1}}]}].\n")
    subprocess.run(
        [str(RABBITMQ_BIN / "rabbitmq-server"), "-detached"],
        env=node.env(),
        check=True,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + 120
    while True:
        result = node.ctl("await_startup", timeout=120)
        if result.returncode == 0:
            break
        if time.monotonic() > deadline:
            stop(node)
            raise RuntimeError(f"node {name} did not start: {result.stderr.strip()}")
        time.sleep(0.5)  # the node's pid file may not exist yet
    (base_dir / STATE_FILE).write_text(json.dumps(asdict(node)))
    return node


def stop(node: PrivateNode) -> None:
    node.ctl("stop", timeout=120)
    subprocess.run(["epmd", "-kill"], env=node.env(), capture_output=True, timeout=30, check=False)


def load(base_dir: Path) -> PrivateNode:
    return PrivateNode(**json.loads((base_dir / STATE_FILE).read_text()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, required=True, help="folder for the node's data, logs and state")
    parser.add_argument("--name", default="amqplab@localhost", help="Erlang node name (default: %(default)s)")
    args = parser.parse_args()
    try:
        if args.action == "start":
            node = start(args.dir, args.name)
            print(f"AMQP_URL={node.amqp_url}")
            print(f"AMQP_LAB_MANAGEMENT_URL={node.management_url}")
        else:
            stop(load(args.dir))
            shutil.rmtree(args.dir, ignore_errors=True)
    except (RuntimeError, OSError, TypeError, ValueError, subprocess.SubprocessError) as exc:
        print(f"rabbitmq_node: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
