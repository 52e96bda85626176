"""Shared fixtures: a private RabbitMQ node for the whole run, and settings that point at it."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from amqp_lab.config import Settings, build

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import rabbitmq_node


def pytest_report_header() -> str:
    if rabbitmq_node.installed():
        return "broker tests: a private RabbitMQ node from /usr/lib/rabbitmq/bin"
    return "broker tests: SKIPPED, rabbitmq-server is not installed (apt-get install -y rabbitmq-server)"


@pytest.fixture(scope="session")
def rabbit() -> Iterator[rabbitmq_node.PrivateNode]:
    """A private node (own name, folder, ports, epmd) started once and stopped at the end."""
    if not rabbitmq_node.installed():
        reason = "rabbitmq-server is not installed: apt-get install -y rabbitmq-server"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the broker tests, but {reason}")
        pytest.skip(f"BROKER TESTS SKIPPED: {reason}")
    base = Path(tempfile.mkdtemp(prefix="amqp-lab-node-"))
    node = rabbitmq_node.start(base, name=f"amqplab-test-{os.getpid()}@localhost")
    try:
        yield node
    finally:
        rabbitmq_node.stop(node)


def settings_for(node: rabbitmq_node.PrivateNode, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "amqp_url": node.amqp_url,
        "management_url": node.management_url,
        "refresh": 1.0,
        "timeout": 5.0,
    }
    values.update(overrides)
    return build(values)


@pytest.fixture
def settings(rabbit: rabbitmq_node.PrivateNode) -> Settings:
    return settings_for(rabbit)


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll a condition until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)
