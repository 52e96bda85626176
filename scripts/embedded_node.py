#!/usr/bin/env python3
"""The embedded broker in a process of its own on free loopback ports, shaped like rabbitmq_node's PrivateNode
(version, URLs, stop_app/start_app for outages) so the tests and benchmarks drive both alike."""

from __future__ import annotations

from amqp_lab.embedded.process import BrokerProcess, free_port

VERSION = "embedded"


class EmbeddedNode(BrokerProcess):
    version = VERSION

    def start_app(self) -> None:
        self.start()

    def stop_app(self) -> None:
        """As an outage: the broker goes (its clients are told), and everything it held with it."""
        self.stop()


def start() -> EmbeddedNode:
    node = EmbeddedNode(free_port(), free_port())
    node.start()
    return node


def stop(node: EmbeddedNode) -> None:
    node.stop()
