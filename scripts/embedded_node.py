#!/usr/bin/env python3
"""The embedded broker in a process of its own on free loopback ports, shaped like rabbitmq_node's PrivateNode
(version, URLs, stop_app/start_app for outages) so the tests and benchmarks drive both alike."""

from __future__ import annotations

import socket
from pathlib import Path

from amqp_lab.embedded.process import BrokerProcess
from rabbitmq_node import free_ports  # below the ephemeral range: no client connection takes them meanwhile

VERSION = "embedded"


class EmbeddedNode(BrokerProcess):
    version = VERSION
    amqps_port = 0  # 0: no TLS listeners
    https_port = 0
    name = f"embedded@{socket.gethostname()}"  # as its management API names its node

    @property
    def amqps_url(self) -> str:
        return f"amqps://guest:guest@127.0.0.1:{self.amqps_port}/"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}/"

    def start_app(self) -> None:
        self.start()

    def stop_app(self) -> None:
        """As an outage: the broker goes (its clients are told), and everything it held with it."""
        self.stop()


def start(tls: Path | None = None, options: tuple[str, ...] = ()) -> EmbeddedNode:
    """`tls`: a folder holding ca.pem, server.pem and server.key, as rabbitmq_node.start takes it: the broker
    then also listens for amqps and https with that certificate. `options`: more `amqp-lab broker` flags."""
    amqp, management, amqps, https = free_ports(4)
    if tls is not None:
        options += ("--amqps-port", str(amqps), "--https-port", str(https))
        options += ("--tls-cert", str(tls / "server.pem"), "--tls-key", str(tls / "server.key"))
        options += ("--tls-ca", str(tls / "ca.pem"))
    node = EmbeddedNode(amqp, management, options)
    if tls is not None:
        node.amqps_port, node.https_port = amqps, https
    node.start()
    return node


def stop(node: EmbeddedNode) -> None:
    node.stop()
