"""The explorer's broker side against a real RabbitMQ: queue detail, stuck consumers, peek, tap, what-if, actions."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import aio_pika
import httpx
import pytest
from amqp_lab.broker.connection import connect_first
from amqp_lab.broker.consumer_health import ProgressWatch
from amqp_lab.broker.errors import ManagementObjectGone, ManagementRefused, ReadOnlyRefused
from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.models import Exchange
from amqp_lab.broker.poller import BrokerSnapshot, ManagementPoller, Wanted
from amqp_lab.broker.queue_settings import consumer_timeout_ms, effective_settings
from amqp_lab.broker.queue_watch import QueueWatch
from amqp_lab.broker.send import OutgoingMessage, send
from amqp_lab.broker.tap import TAP_PREFIX, Tap, TapRefused
from amqp_lab.broker.whatif import fetch_routes
from amqp_lab.config import Settings

from tests.conftest import settings_for, wait_for


@pytest.fixture
async def channel(settings: Settings) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await connect_first(settings)
    async with connection:
        yield await connection.channel()


def name(kind: str) -> str:
    return f"explore-{kind}-{uuid.uuid4().hex[:6]}"


async def lab_objects(client: ManagementClient) -> list[str]:
    queues, _ = await client.queues("/", name="^" + TAP_PREFIX.replace(".", r"\."))
    exchanges = [e.name for e in await client.exchanges("/") if e.name.startswith(TAP_PREFIX)]
    return [q.name for q in queues] + exchanges


async def test_queue_detail_merges_arguments_and_policy_as_rabbitmq_does(
    settings: Settings, channel: aio_pika.abc.AbstractChannel
) -> None:
    queue_name = name("policy")
    policy = f"{queue_name}-limits"
    arguments = {"x-message-ttl": 60_000, "x-dead-letter-exchange": "from-argument", "x-max-length": 10}
    queue = await channel.declare_queue(queue_name, durable=True, arguments=arguments)
    await channel.set_qos(prefetch_count=7)
    await queue.consume(lambda m: None)
    user, password = settings.management_credentials
    async with httpx.AsyncClient(base_url=settings.management_base, auth=(user, password)) as http:
        definition = {"message-ttl": 5_000, "dead-letter-exchange": "from-policy", "max-length": 500}
        answer = await http.put(
            f"api/policies/%2F/{quote(policy)}",
            json={"pattern": f"^{queue_name}$", "definition": definition, "apply-to": "queues"},
        )
        assert answer.status_code in (201, 204)
        try:
            async with ManagementClient(settings) as client:

                async def policy_applied() -> bool:
                    return (await client.queue("/", queue_name)).policy == policy

                await wait_for(policy_applied, what="the policy to apply")
                detail = await client.queue("/", queue_name)
        finally:
            await http.delete(f"api/policies/%2F/{quote(policy)}")
            await queue.delete(if_unused=False)
    shown = {s.label: (s.value, s.source) for s in effective_settings(detail)}
    assert shown["message TTL"] == (5_000, f"policy {policy}")  # the lower wins
    assert shown["max length"] == (10, "argument")  # the lower wins
    assert shown["dead-letter exchange"] == ("from-argument", "argument")  # the argument wins
    assert shown["overflow"] == ("drop-head", "default")
    assert [(c.prefetch, c.ack_required) for c in detail.consumers] == [(7, True)]
    assert consumer_timeout_ms(effective_settings(detail))[0] == 30 * 60 * 1000


async def test_a_consumer_that_stops_acking_is_flagged_stuck(
    settings: Settings, channel: aio_pika.abc.AbstractChannel
) -> None:
    stalled_name, healthy_name = name("stalled"), name("healthy")
    stalled = await channel.declare_queue(stalled_name, exclusive=True)
    await channel.set_qos(prefetch_count=3)
    held: list[aio_pika.abc.AbstractIncomingMessage] = []
    await stalled.consume(held.append)  # takes three messages and never acks them
    for n in range(5):
        await channel.default_exchange.publish(aio_pika.Message(b"%d" % n), stalled_name)
    watch = ProgressWatch(stuck_after=2.0)
    async with ManagementClient(settings) as client:
        # Asked as the queue screen asks: a channel the API cannot describe this time (RabbitMQ 3.10 answered a
        # list for one, on a busy machine) has no activity in that look, where asking it alone raised
        stalled_queue = QueueWatch(client, "/", stalled_name)

        async def judged_stuck() -> bool:
            look = await stalled_queue.look()
            health = watch.judge(look.detail.consumers, look.activity, timeout_s=5.0, now=time.monotonic())
            return bool(health) and health[0].stuck and health[0].activity.unacked == 3

        await wait_for(judged_stuck, what="the stalled consumer to be flagged stuck")
        healthy_watch = ProgressWatch(stuck_after=2.0)
        connection = await connect_first(settings)
        async with connection:
            acking = await connection.channel()
            await acking.set_qos(prefetch_count=1)
            healthy = await acking.declare_queue(healthy_name, exclusive=True)
            await healthy.consume(lambda m: m.ack())
            healthy_queue = QueueWatch(client, "/", healthy_name)
            flags = []
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                await acking.default_exchange.publish(aio_pika.Message(b"x"), healthy_name)
                look = await healthy_queue.look()
                health = healthy_watch.judge(look.detail.consumers, look.activity, 5.0, time.monotonic())
                flags.extend(f for h in health for f in h.flags)
                await asyncio.sleep(0.2)
    assert len(held) == 3
    assert flags == []  # a consumer that keeps acking is never stuck


@pytest.mark.embedded
async def test_peek_requeues_and_marks_redelivered(settings: Settings, channel: aio_pika.abc.AbstractChannel) -> None:
    queue_name = name("peek")
    await channel.declare_queue(queue_name, auto_delete=True, arguments={"x-expires": 60_000})
    payloads = [json.dumps({"order": 1}).encode(), bytes(range(256)), b"plain"]
    for body in payloads:
        await channel.default_exchange.publish(
            aio_pika.Message(body, headers={"tenant": "eu"}, content_type="application/json"), queue_name
        )
    async with ManagementClient(settings) as client:
        first = await client.peek("/", queue_name, 10)
        second = await client.peek("/", queue_name, 10)
    assert [m.payload for m in first] == payloads  # binary comes back base64 and is decoded
    assert [m.redelivered for m in first] == [False, False, False]
    assert [m.redelivered for m in second] == [True, True, True]  # peeking requeued them, redelivered
    assert first[0].headers == {"tenant": "eu"} and first[0].properties["content_type"] == "application/json"
    assert first[0].routing_key == queue_name
    left = await channel.declare_queue(queue_name, passive=True)
    assert left.declaration_result.message_count == 3


@pytest.mark.embedded
async def test_an_exclusive_queue_cannot_be_peeked_and_the_broker_says_why(
    settings: Settings, channel: aio_pika.abc.AbstractChannel
) -> None:
    queue_name = name("private")
    await channel.declare_queue(queue_name, exclusive=True)
    async with ManagementClient(settings) as client:
        with pytest.raises(ManagementRefused, match="exclusive"):
            await client.peek("/", queue_name, 1)


@pytest.mark.embedded
async def test_purge_and_delete_and_read_only_refuses_both(
    settings: Settings, channel: aio_pika.abc.AbstractChannel
) -> None:
    queue_name, exchange_name = name("purge"), name("gone")
    await channel.declare_queue(queue_name, durable=True)
    await channel.declare_exchange(exchange_name, "topic", durable=True)
    for _ in range(4):
        await channel.default_exchange.publish(aio_pika.Message(b"x"), queue_name)
    async with ManagementClient(replace(settings, read_only=True)) as reader:
        for call in (
            reader.purge("/", queue_name),
            reader.delete_queue("/", queue_name),
            reader.delete_exchange("/", exchange_name),
            reader.peek("/", queue_name, 1),
        ):
            with pytest.raises(ReadOnlyRefused):
                await call
    assert (await channel.declare_queue(queue_name, passive=True)).declaration_result.message_count == 4
    async with ManagementClient(settings) as client:
        await client.purge("/", queue_name)
        assert (await channel.declare_queue(queue_name, passive=True)).declaration_result.message_count == 0
        await client.delete_queue("/", queue_name)
        await client.delete_exchange("/", exchange_name)
        with pytest.raises(ManagementObjectGone, match=queue_name):
            await client.queue("/", queue_name)
        with pytest.raises(ManagementObjectGone, match=exchange_name):
            await client.exchange("/", exchange_name)


@pytest.mark.embedded
async def test_tap_sees_what_the_exchange_routes_and_leaves_nothing(
    settings: Settings, channel: aio_pika.abc.AbstractChannel
) -> None:
    exchange_name, queue_name = name("orders"), name("eu-orders")
    exchange = await channel.declare_exchange(exchange_name, "topic", auto_delete=True)
    queue = await channel.declare_queue(queue_name, exclusive=True)
    await queue.bind(exchange, "orders.eu.*")
    async with ManagementClient(settings) as client:
        tapped = await client.exchange("/", exchange_name)
        tap = Tap(settings, tapped)
        await tap.start(await client.bindings_from("/", exchange_name))
        try:
            await exchange.publish(aio_pika.Message(b'{"id": 1}', headers={"h": 1}), "orders.eu.new")
            # An unroutable mandatory message is still returned: the tap did not make it routable.
            sent = await send(settings, "/", OutgoingMessage(exchange_name, "orders.us.new", b"{}", {}))
            assert sent.routed is False and "312" in sent.reply
            await wait_for(lambda: tap.seen >= 1, what="the tap to see the routed message")
            assert [(m.routing_key, m.body, m.headers) for m in tap.messages] == [
                ("orders.eu.new", b'{"id": 1}', {"h": 1})
            ]
            assert (await queue.get(no_ack=True, timeout=5)).body == b'{"id": 1}'  # the consumer still got it
            assert await lab_objects(client) != []
        finally:
            await tap.stop()
        await wait_for(lambda: _none_left(client), what="the tap's exchange and queue to go")

        crashed = Tap(settings, tapped)
        await crashed.start(await client.bindings_from("/", exchange_name))
        assert crashed._connection is not None
        await crashed._connection.close()  # as if amqp-lab died: the broker removes everything
        await wait_for(lambda: _none_left(client), what="the crashed tap's exchange and queue to go")


async def _none_left(client: ManagementClient) -> bool:
    return await lab_objects(client) == []


@pytest.mark.embedded
async def test_the_default_exchange_cannot_be_tapped_and_read_only_refuses_taps(settings: Settings) -> None:
    default = Exchange("", "/", "direct", True, False, False, 0.0, 0.0)
    with pytest.raises(TapRefused, match="Peek at the destination queue"):
        await Tap(settings, default).start([])
    topic = Exchange("amq.topic", "/", "topic", True, False, False, 0.0, 0.0)
    with pytest.raises(ReadOnlyRefused):
        await Tap(replace(settings, read_only=True), topic).start([])


@pytest.mark.embedded
async def test_what_if_agrees_with_the_broker(settings: Settings, channel: aio_pika.abc.AbstractChannel) -> None:
    """Direct, topic and headers exchanges chained exchange-to-exchange, with an alternate exchange."""
    entry, regional, by_header, fallback = (name(k) for k in ("entry", "regional", "headers", "fallback"))
    await channel.declare_exchange(fallback, "fanout", auto_delete=True)
    entry_x = await channel.declare_exchange(
        entry, "direct", auto_delete=True, arguments={"alternate-exchange": fallback}
    )
    regional_x = await channel.declare_exchange(regional, "topic", auto_delete=True)
    header_x = await channel.declare_exchange(by_header, "headers", auto_delete=True)
    await regional_x.bind(entry_x, "order")
    await header_x.bind(entry_x, "order")
    queues = {}
    for label, source, key, arguments in (
        ("eu", regional_x, "order.eu.#", None),
        ("any", regional_x, "*.*", None),
        ("vip", header_x, "", {"x-match": "all", "tier": "vip"}),
        ("flagged", header_x, "", {"x-match": "any-with-x", "x-flag": 1}),
        ("direct", entry_x, "refund", None),
        ("lost", fallback, "", None),
    ):
        queue = await channel.declare_queue(name(label), exclusive=True)
        await queue.bind(source, key, arguments=arguments)
        queues[queue.name] = queue
    async with ManagementClient(settings) as client:
        routes = await fetch_routes(client, "/", entry)
    # The routing key is matched at every hop: "order" reaches the topic exchange, where "*.*" needs two words.
    cases = [("order", {}), ("order", {"tier": "vip"}), ("order", {"x-flag": 1}), ("refund", {}), ("nothing", {})]
    for n, (key, headers) in enumerate(cases):
        await entry_x.publish(aio_pika.Message(str(n).encode(), headers=headers), key)
    expected = [set(routes.ask(key, headers).queues) for key, headers in cases]
    received: list[set[str]] = [set() for _ in cases]
    for queue_name, queue in queues.items():
        while (message := await queue.get(no_ack=True, fail=False, timeout=5)) is not None:
            received[int(message.body)].add(queue_name)
    assert received == expected
    by_label = {
        label: {n for n in queues if n.startswith(f"explore-{label}-")}
        for label in ("vip", "flagged", "direct", "lost")
    }
    # "order" alone matches bindings to exchanges that route it nowhere: not unroutable, so no alternate.
    assert expected == [set(), by_label["vip"], by_label["flagged"], by_label["direct"], by_label["lost"]]
    assert routes.ask("nothing").hops[-1].alternate_of == entry


async def test_the_channels_ack_rate_holds_while_acks_flow(five_second_samples: Any) -> None:
    """A consumer acks about 40 a second. On a broker with RabbitMQ's default samples of 5 s, the broker's own ack
    rate reads 0 between its statistics steps (the channels and consumers tabs said ack/s 0 while acks flowed);
    the explorer's holds from step to step, as the queue table's does."""
    settings = settings_for(five_second_samples)
    queue_name = name("acks")
    connection = await connect_first(settings)
    async with connection, ManagementClient(settings) as client:
        publishing = await connection.channel()
        consuming = await connection.channel(publisher_confirms=False)
        await consuming.set_qos(prefetch_count=10)
        queue = await consuming.declare_queue(queue_name, auto_delete=True)

        async def ack(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()

        await queue.consume(ack)

        async def publish() -> None:
            while True:
                await publishing.default_exchange.publish(aio_pika.Message(b"x"), routing_key=queue_name)
                await asyncio.sleep(0.025)

        publisher = asyncio.create_task(publish())
        poller = ManagementPoller(client, 1.0, lambda _: None)
        poller.wanted = Wanted(listings=frozenset(["channels"]))
        rates: list[float] = []
        try:

            async def acking() -> bool:  # the rate appears once the poller has seen two of the broker's steps
                channels = (await poller.poll_once()).channels
                rates[:] = [c.ack_rate for c in channels if c.consumers]
                return bool(rates) and rates[0] > 0

            await wait_for(acking, what="an ack rate on the consuming channel")
            seen, brokers = [], []
            for _ in range(28):  # four polls a second for seven seconds: past at least one statistics step
                await asyncio.sleep(0.25)
                seen += [c.ack_rate for c in (await poller.poll_once()).channels if c.consumers]
                listed = await client.get_json("api/channels")
                brokers += [acks_per_second(c) for c in listed if c.get("consumer_count")]
        finally:
            publisher.cancel()
    assert min(brokers) == 0, brokers  # the broker's own rate did drop to 0 between steps
    assert len(seen) == 28 and min(seen) > 10, seen


def acks_per_second(channel: dict[str, Any]) -> float:
    return float(((channel.get("message_stats") or {}).get("ack_details") or {}).get("rate", 0.0))


@pytest.mark.embedded
async def test_the_first_page_comes_unsorted_and_says_so_then_the_sorted_page_follows_at_once(
    settings: Settings, channel: aio_pika.abc.AbstractChannel
) -> None:
    """With more queues than a page holds, the first poll asks for a page the broker need not sort (on 20,000
    queues it answers in 0.4 s instead of a second) and says it is unsorted; the sorted page follows without
    waiting for the next interval. When a page holds every match, the broker is not asked to sort at all."""
    prefix = name("pages")
    names = [f"{prefix}.{n:02d}" for n in range(12)]
    for queue in reversed(names):  # declared backwards: the broker's own order is not the name order
        await channel.declare_queue(queue, auto_delete=True)
    seen: list[BrokerSnapshot] = []
    async with ManagementClient(settings) as client:
        poller = ManagementPoller(client, 600.0, seen.append, limit=5)  # a later poll comes only when asked for
        poller.wanted = Wanted(name_filter=prefix)
        polling = asyncio.create_task(poller.run())
        try:
            await wait_for(lambda: len(seen) >= 2, what="the sorted page after the first")
        finally:
            polling.cancel()
        first, sorted_page = seen[0], seen[1]
        assert first.in_broker_order and first.matching == 12 and len(first.queues) == 5
        assert not sorted_page.in_broker_order
        assert [q.name for q in sorted_page.queues] == names[:5]

        whole = ManagementPoller(client, 600.0, lambda _: None, limit=20)
        whole.wanted = Wanted(name_filter=prefix)
        snapshot = await whole.poll_once()
    assert not snapshot.in_broker_order and sorted(q.name for q in snapshot.queues) == names
