"""The AMQP connection manager against a real node: states, failover, outages and refusals."""

from __future__ import annotations

import asyncio
import re

import pytest
from amqp_lab.broker.connection import Backoff, ConnectionManager, ConnectionState, ConnectionStatus

from tests.conftest import settings_for, wait_for

pytestmark = pytest.mark.embedded

FAST = Backoff(initial=0.2, cap=1.0)


def recording(manager: ConnectionManager) -> list[ConnectionStatus]:
    seen: list[ConnectionStatus] = []
    manager.add_listener(seen.append)
    return seen


def states(seen: list[ConnectionStatus]) -> list[ConnectionState]:
    """The transitions, with repeated attempts in one state folded together."""
    folded: list[ConnectionState] = []
    for status in seen:
        if not folded or folded[-1] is not status.state:
            folded.append(status.state)
    return folded


async def test_connect_and_close(rabbit) -> None:  # type: ignore[no-untyped-def]
    manager = ConnectionManager(settings_for(rabbit), FAST)
    seen = recording(manager)
    status = await manager.connect()
    assert status.state is ConnectionState.CONNECTED
    assert manager.connection is not None and not manager.connection.is_closed
    await manager.close()
    assert states(seen) == [ConnectionState.CONNECTING, ConnectionState.CONNECTED, ConnectionState.CLOSED]
    assert all("guest@" not in s.endpoint or "****" in s.endpoint for s in seen)


async def test_fails_over_to_the_next_node_in_order(rabbit) -> None:  # type: ignore[no-untyped-def]
    dead = "amqp://guest:guest@127.0.0.1:1/"
    manager = ConnectionManager(settings_for(rabbit, amqp_url=[dead, rabbit.amqp_url]), FAST)
    seen = recording(manager)
    status = await manager.connect()
    await manager.close()
    assert status.state is ConnectionState.CONNECTED
    assert status.endpoint.endswith(f":{rabbit.amqp_port}/")
    assert [s.endpoint.endswith(":1/") for s in seen[:1]] == [True]
    assert any("nothing listens at 127.0.0.1:1" in (s.reason or "") for s in seen)


async def test_a_broker_outage_is_reported_and_recovered_from(rabbit) -> None:  # type: ignore[no-untyped-def]
    manager = ConnectionManager(settings_for(rabbit), FAST)
    seen = recording(manager)
    await manager.connect()
    try:
        await asyncio.to_thread(rabbit.stop_app)
        await wait_for(lambda: manager.status.state is ConnectionState.RECONNECTING, what="RECONNECTING")
        await wait_for(lambda: manager.status.attempt >= 2, what="a retried reconnect")
        assert manager.connection is None
        assert manager.status.down_since is not None
        await asyncio.to_thread(rabbit.start_app)
        await wait_for(lambda: manager.status.state is ConnectionState.CONNECTED, what="CONNECTED again")
    finally:
        await manager.close()
    assert states(seen) == [
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.RECONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.CLOSED,
    ]
    lost = next(s for s in seen if s.state is ConnectionState.RECONNECTING)
    assert lost.reason and lost.reason.startswith("connection lost")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"password": "wrong"}, r"refused user 'guest' \(ACCESS_REFUSED\): check the user name and password"),
        ({"vhost": "no-such-vhost"}, r"refused vhost 'no-such-vhost' \(NOT_ALLOWED\).*check --vhost"),
    ],
)
async def test_refusals_fail_at_once_with_the_fix_named(rabbit, overrides, message) -> None:  # type: ignore[no-untyped-def]
    url = rabbit.amqp_url
    if "password" in overrides:
        url = url.replace("guest:guest", f"guest:{overrides['password']}")
    settings = settings_for(rabbit, amqp_url=url, vhost=overrides.get("vhost"))
    manager = ConnectionManager(settings, FAST)
    status = await manager.connect()
    await manager.close()
    assert status.state is ConnectionState.FAILED
    assert status.reason is not None
    assert re.search(message, status.reason), status.reason
    assert "wrong" not in status.reason


async def test_the_management_port_is_not_mistaken_for_amqp(rabbit) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(rabbit, amqp_url=f"amqp://guest:guest@127.0.0.1:{rabbit.management_port}/", timeout=2)
    manager = ConnectionManager(settings, FAST)
    status = await manager.connect()
    await manager.close()
    assert status.state is ConnectionState.FAILED
    assert "no AMQP handshake" in (status.reason or "")
    assert "management port (15672)" in (status.reason or "")


async def test_tls_to_a_plain_port_is_named(rabbit) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(rabbit, amqp_url=f"amqps://guest:guest@127.0.0.1:{rabbit.amqp_port}/")
    manager = ConnectionManager(settings, FAST)
    status = await manager.connect()
    await manager.close()
    assert status.state is ConnectionState.FAILED
    assert "TLS handshake with amqps://guest:****@127.0.0.1" in (status.reason or "")
