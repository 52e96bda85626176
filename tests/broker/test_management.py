"""The management client against a real RabbitMQ node."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import httpx
import pytest
from amqp_lab import __version__
from amqp_lab.broker import errors
from amqp_lab.broker.management import ManagementClient
from amqp_lab.config import Settings

from tests.conftest import settings_for, wait_for

pytestmark = pytest.mark.embedded

SEEDED = 60


@pytest.fixture
async def seeded(rabbit) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """SEEDED queues named <prefix>-NN, one message in each of the even ones; deleted afterwards."""
    prefix = f"seed-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(rabbit.amqp_url)
    async with connection:
        channel = await connection.channel()
        for n in range(SEEDED):
            queue = await channel.declare_queue(f"{prefix}-{n:02d}", durable=True)
            if n % 2 == 0:
                await channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key=queue.name)
        yield prefix
        for n in range(SEEDED):
            await channel.queue_delete(f"{prefix}-{n:02d}")


async def test_overview_reports_the_broker(rabbit, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    async with ManagementClient(settings) as client:
        overview = await client.overview()
    assert overview.exchanges >= 6  # the default exchange and the amq.* ones
    if rabbit.version == "embedded":
        assert (overview.product, overview.version) == ("amqp-lab embedded broker", __version__)
        assert overview.node.startswith("embedded@")
        assert overview.default_queue_type == "classic"
        return
    assert overview.product == "RabbitMQ"
    assert overview.version.split(".")[0] in ("3", "4")
    assert overview.node.startswith("amqplab-test-")
    # Only RabbitMQ 4.x names a default queue type; 3.x declares classic queues.
    expected = "classic" if overview.version.startswith("4.") else None
    assert overview.default_queue_type == expected


async def test_queue_listing_pages_through_every_seeded_queue(settings: Settings, seeded: str) -> None:
    async with ManagementClient(settings) as client:

        async def all_listed() -> bool:
            page = await client.queue_page("/", page=1, page_size=25, name=seeded)
            return page.filtered_count == SEEDED

        await wait_for(all_listed, what="the seeded queues in the management API")
        pages = [await client.queue_page("/", page=p, page_size=25, name=seeded) for p in (1, 2, 3)]
        assert [len(p.items) for p in pages] == [25, 25, 10]
        assert pages[0].page_count == 3
        names = sorted(q.name for p in pages for q in p.items)
        assert names == [f"{seeded}-{n:02d}" for n in range(SEEDED)]

        async def depths_counted() -> bool:
            queues, _ = await client.queues("/", name=seeded)
            return sum(q.ready for q in queues) == SEEDED // 2

        await wait_for(depths_counted, what="ready counts of the seeded queues")
        queues, matching = await client.queues("/", name=seeded, limit=40)
        assert (len(queues), matching) == (40, SEEDED)


async def test_lists_of_each_object_kind(settings: Settings, seeded: str) -> None:
    async with ManagementClient(settings) as client:
        assert "/" in [v.name for v in await client.vhosts()]
        assert "amq.topic" in [e.name for e in await client.exchanges("/")]
        bindings = await client.bindings("/")
        assert any(b.destination == f"{seeded}-00" and b.source == "" for b in bindings)
        assert isinstance(await client.connections(), list)
        assert isinstance(await client.channels(), list)
        assert isinstance(await client.consumers("/"), list)


async def test_a_connection_is_listed_with_its_name_heartbeat_tls_and_bytes(rabbit, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """What the Connections tab shows of a client: the name it gave, what it negotiated, the bytes it moved."""
    named = f"amqp-lab test {uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(rabbit.amqp_url + "?heartbeat=7", client_properties={"connection_name": named})
    async with connection, ManagementClient(settings) as client:
        channel = await connection.channel()
        queue = await channel.declare_queue("", exclusive=True)
        for _ in range(4):
            await channel.default_exchange.publish(aio_pika.Message(b"x" * 4096), queue.name)
        listed = None

        async def counted() -> bool:  # the broker's statistics come once a second
            nonlocal listed
            listed = next((c for c in await client.connections() if c.client_name == named), None)
            return listed is not None and listed.received >= 4 * 4096 and listed.channels > 0

        # Its bytes and its channel count come in separate statistics: RabbitMQ 4.0 once listed the bytes first.
        await wait_for(counted, timeout=15, what="the connection listed with the bytes it sent and its channel")
        assert listed is not None
        assert (listed.heartbeat, listed.tls, listed.channels) == (7, False, 1)
        assert listed.sent > 0  # the broker's side of the handshake and the declare, at the least


async def test_wrong_password_is_a_401_naming_the_user(rabbit) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(rabbit, management_url=rabbit.management_url.replace("//", "//guest:wrong@"))
    async with ManagementClient(settings) as client:
        with pytest.raises(errors.ManagementUnauthorized, match=r"refused user 'guest' \(401\)"):
            await client.overview()


async def test_amqp_port_given_as_management_url_is_named(rabbit) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(rabbit, management_url=f"http://127.0.0.1:{rabbit.amqp_port}/")
    async with ManagementClient(settings) as client:
        with pytest.raises(errors.ManagementError, match=r"15672"):
            await client.overview()


async def test_a_url_that_is_not_the_api_root_is_named(rabbit) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(rabbit, management_url=rabbit.management_url + "rabbit/")
    async with ManagementClient(settings) as client:
        with pytest.raises(errors.ManagementNotFound, match=r"has no api/overview .*the URL its root"):
            await client.overview()


async def test_an_exchange_counts_one_message_in_and_one_out_per_queue_it_reached(rabbit) -> None:  # type: ignore[no-untyped-def]
    """RabbitMQ's publish_out is per queue reached: a fanout to three queues takes in 2 and routes out 6. The
    embedded broker counted 2 out, once per message."""
    name = f"fan-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(rabbit.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT, auto_delete=True)
        queues = [await channel.declare_queue(f"{name}-{n}", exclusive=True) for n in range(3)]
        for queue in queues:
            await queue.bind(exchange)
        for _ in range(2):
            await exchange.publish(aio_pika.Message(b"x"), routing_key="")
        stats: dict[str, int] = {}

        async def counted() -> bool:
            async with httpx.AsyncClient(base_url=rabbit.management_url, auth=("guest", "guest")) as http:
                document = (await http.get(f"api/exchanges/%2F/{name}")).json()
            stats.update(document.get("message_stats") or {})
            # RabbitMQ collects publish_in and publish_out apart: one can show a moment before the other.
            return stats.get("publish_in") == 2 and stats.get("publish_out", 0) >= 6

        await wait_for(counted, what="the exchange's 2 in and 6 out", explain=lambda: f"message_stats: {stats}")
        assert stats["publish_out"] == 6
