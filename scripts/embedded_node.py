#!/usr/bin/env python3
"""The embedded broker in a process of its own on free loopback ports, shaped like rabbitmq_node's PrivateNode
so the tests and benchmarks drive both alike."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from rabbitmq_node import free_port

VERSION = "embedded"
START_TIMEOUT = 20.0


@dataclass
class EmbeddedNode:
    amqp_port: int
    management_port: int
    version: str = VERSION
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}/"

    def start_app(self) -> None:
        command = [sys.executable, "-m", "amqp_lab", "broker", "--port", str(self.amqp_port)]
        command += ["--management-port", str(self.management_port)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT
        while not all(_answers(port) for port in (self.amqp_port, self.management_port)):
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"the embedded broker did not start: {error.strip()}")
            if time.monotonic() > deadline:
                self.stop_app()
                raise RuntimeError(f"the embedded broker did not listen within {START_TIMEOUT:g} s")
            time.sleep(0.05)

    def stop_app(self) -> None:
        """As an outage: the process goes (Ctrl-C, so clients are told), and everything it held with it."""
        if self.process is None:
            return
        self.process.send_signal(2)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start() -> EmbeddedNode:
    node = EmbeddedNode(free_port(), free_port())
    node.start_app()
    return node


def stop(node: EmbeddedNode) -> None:
    node.stop_app()
