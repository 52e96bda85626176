"""The suite's private RabbitMQ node leaves nothing behind, even when it is too loaded to stop in time."""

from __future__ import annotations

import socket

import rabbitmq_node
from rabbitmq_node import running_from


def test_a_node_that_would_not_stop_is_killed_with_its_folder() -> None:
    """A start that timed out under heavy load stopped its node with `rabbitmqctl stop`; when that timed out
    too, the node ran on for the rest of the day (found an hour later, beside 8 busy processes)."""
    node = rabbitmq_node.start("amqplab-kill-test@localhost")
    assert running_from(node.base_dir)
    rabbitmq_node.kill(node)
    assert running_from(node.base_dir) == []
    assert not node.host_dir.exists()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", node.amqp_port)) != 0  # nothing answers on its port
