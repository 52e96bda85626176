"""Cases found by real clients' own test suites (aio-pika's, aiormq's, py-amqp's) and by hostile clients, run on
RabbitMQ 3.10, 4.0 and the embedded broker alike: each is what RabbitMQ does, and the embedded broker must too."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection
from amqp_lab.embedded.wire import encode_header_payload
from pamqp.commands import Basic, Confirm
from pamqp.commands import Channel as ChannelMethods
from pamqp.commands import Connection as ConnectionMethods
from pamqp.commands import Queue as QueueMethods

from tests.broker.raw_client import RawClient
from tests.broker.test_conformance import refused
from tests.conftest import wait_for

pytestmark = pytest.mark.embedded
TRIES = 20


async def test_unbinding_what_is_gone_already_is_unbind_ok(connection: AbstractConnection, name: str) -> None:
    """aio-pika's RPC.close() unbinds from an auto-delete exchange that went with its result queue."""
    channel = await connection.channel()
    exchange = await channel.declare_exchange(f"{name}.x", "direct", auto_delete=True)
    queue = await channel.declare_queue(name, exclusive=True)
    await queue.bind(exchange, "key")
    await queue.delete()  # its binding, and with it the auto-delete exchange, go too
    raw = channel.channel
    await raw.queue_unbind(queue=name, exchange=f"{name}.x", routing_key="key")
    await raw.queue_unbind(queue=f"{name}.never", exchange=f"{name}.never", routing_key="key")
    await raw.exchange_unbind(destination=f"{name}.never", source=f"{name}.x", routing_key="key")


async def test_deleting_a_queue_consumed_on_the_same_channel_answers_before_it_cancels(rabbit: Any, name: str) -> None:
    """py-amqp raised ConsumerCancelled inside queue_delete when basic.cancel came first."""
    client = await RawClient.open(rabbit.amqp_port)
    try:
        client.send(1, ChannelMethods.Open())
        await client.expect(ChannelMethods.OpenOk)
        client.send(1, QueueMethods.Declare(queue=name, exclusive=True))
        await client.expect(QueueMethods.DeclareOk)
        client.send(1, Basic.Consume(queue=name, consumer_tag="tag"))
        await client.expect(Basic.ConsumeOk)
        client.send(1, QueueMethods.Delete(queue=name))
        assert [type((await client.method())[1]) for _ in range(2)] == [QueueMethods.DeleteOk, Basic.Cancel]
    finally:
        await client.close()


async def test_a_consumer_on_the_publishing_channel_gets_the_message_before_its_confirm(rabbit: Any, name: str) -> None:
    """aiormq's test_connection_close_stairway waits for the delivery once the publish is confirmed: a link lost
    between the two left it waiting for ever when the confirm came first. RabbitMQ sends the delivery first as a
    rule (its queue process hands the channel the delivery, then the confirm), not as a promise: on a busy machine
    a confirm was seen first once in 3 runs. The embedded broker always sends it first."""
    client = await RawClient.open(rabbit.amqp_port)
    try:
        client.send(1, ChannelMethods.Open())
        await client.expect(ChannelMethods.OpenOk)
        client.send(1, Confirm.Select())
        await client.expect(Confirm.SelectOk)
        client.send(1, QueueMethods.Declare(queue=name, exclusive=True))
        await client.expect(QueueMethods.DeclareOk)
        client.send(1, Basic.Consume(queue=name, consumer_tag="tag", no_ack=True))
        await client.expect(Basic.ConsumeOk)
        header = encode_header_payload(4, Basic.Properties())
        orders = []
        for _ in range(TRIES):
            client.publish(1, Basic.Publish(exchange="", routing_key=name), header, b"test")
            orders.append(tuple([type((await client.method())[1]) for _ in range(2)]))
        assert set(orders) <= {(Basic.Deliver, Basic.Ack), (Basic.Ack, Basic.Deliver)}
        delivery_first = orders.count((Basic.Deliver, Basic.Ack))
        assert delivery_first == TRIES if rabbit.version == "embedded" else delivery_first > TRIES // 2, orders
    finally:
        await client.close()


async def test_after_close_ok_the_client_closes_the_socket(rabbit: Any) -> None:
    """RabbitMQ answers connection.close with close-ok and leaves the socket for the client to close. A broker that
    closed it at once made aiormq take its own close for a lost connection (test_closing_waiter_cancellation)."""
    client = await RawClient.open(rabbit.amqp_port)
    try:
        client.send(0, ConnectionMethods.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
        await client.expect(ConnectionMethods.CloseOk)
        with pytest.raises(TimeoutError):  # neither more data nor the end of the stream: the socket is still open
            await asyncio.wait_for(client.reader.read(1), 0.5)
    finally:
        await client.close()


async def test_update_secret_is_answered(connection: AbstractConnection) -> None:
    await connection.transport.connection.update_secret("guest", reason="renewed")  # type: ignore[union-attr]
    channel = await connection.channel()
    await channel.declare_queue("", exclusive=True)  # the connection goes on


async def test_recover_async_is_taken(connection: AbstractConnection, name: str) -> None:
    """The deprecated basic.recover-async: RabbitMQ requeues, without an answer."""
    channel = await connection.channel()
    queue = await channel.declare_queue(name, exclusive=True)
    await channel.default_exchange.publish(aio_pika.Message(b"x"), name)
    message = await queue.get(no_ack=False)
    await channel.channel.basic_recover(nowait=True, requeue=True)
    again = await queue.get(no_ack=True, timeout=5)
    assert again.body == message.body and again.redelivered


async def test_an_exclusive_flag_that_differs_is_resource_locked_on_the_owner_too(
    connection: AbstractConnection, name: str
) -> None:
    channel = await connection.channel()
    await channel.declare_queue(name, exclusive=True)
    assert await refused(channel.declare_queue(name, exclusive=False)) == 405


async def test_the_default_exchange_cannot_be_declared_even_passively(connection: AbstractConnection) -> None:
    channel = await connection.channel()
    assert await refused(channel.channel.exchange_declare(exchange="", passive=True)) == 403


async def test_channel_max_limits_open_channels_not_their_numbers(rabbit: Any) -> None:
    client = await RawClient.open(rabbit.amqp_port, channel_max=3)
    try:
        for number in (3000, 1, 2):  # a number above channel_max is fine while few are open
            client.send(number, ChannelMethods.Open())
            await client.expect(ChannelMethods.OpenOk)
        client.send(4, ChannelMethods.Open())  # the fourth
        assert await client.refused() == 530
    finally:
        await client.close()


@pytest.mark.parametrize(("channel_max", "frame_max"), [(65535, 131072), (0, 1024)], ids=["channel_max", "frame_max"])
async def test_a_tune_beyond_what_the_broker_offered_is_refused(rabbit: Any, channel_max: int, frame_max: int) -> None:
    """More channels than offered (2047), or frames under the 4096-byte floor: no connection.open-ok."""
    client = await RawClient.tuned(rabbit.amqp_port, channel_max, frame_max)
    try:
        assert await client.refused() in (530, None)  # RabbitMQ ends the socket; the embedded broker says 530 first
    finally:
        await client.close()


async def test_a_dead_letter_routing_key_must_be_a_string(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel()
    arguments = {"x-dead-letter-exchange": "amq.direct", "x-dead-letter-routing-key": 7}
    assert await refused(channel.declare_queue(name, exclusive=True, arguments=arguments)) == 406


async def test_a_headers_binding_with_a_bad_x_match_is_refused_and_the_exchange_still_routes(
    rabbit: Any, connection: AbstractConnection, name: str
) -> None:
    channel = await connection.channel()
    queue = await channel.declare_queue(name, exclusive=True)
    headers = await channel.get_exchange("amq.headers", ensure=False)
    assert await refused(queue.bind(headers, arguments={"x-match": 7, "a": "b"})) == 406
    channel = await connection.channel()
    queue = await channel.get_queue(name, ensure=False)
    assert await refused(queue.bind(headers, arguments={"x-match": "most", "a": "b"})) == 406
    channel = await connection.channel()
    queue = await channel.get_queue(name, ensure=False)
    await queue.bind(headers, arguments={"x-match": "all", "a": "b"})
    async with await aio_pika.connect(rabbit.amqp_url) as other:  # anyone else publishing there is unharmed
        publisher = await other.channel(publisher_confirms=True)
        exchange = await publisher.get_exchange("amq.headers", ensure=False)
        await exchange.publish(aio_pika.Message(b"x", headers={"a": "b"}), "")
    assert (await queue.get(no_ack=True, timeout=5)).body == b"x"


async def test_a_message_dead_lettered_back_to_its_queue_without_a_rejection_is_dropped(
    connection: AbstractConnection, name: str
) -> None:
    """TTL 0 to the default exchange, back to the same queue: RabbitMQ breaks the cycle by dropping the message."""
    channel = await connection.channel(publisher_confirms=True)
    arguments = {"x-message-ttl": 0, "x-dead-letter-exchange": ""}
    queue = await channel.declare_queue(name, exclusive=True, arguments=arguments)
    await channel.default_exchange.publish(aio_pika.Message(b"x"), name)

    async def empty() -> bool:
        return (await channel.declare_queue(name, passive=True)).declaration_result.message_count == 0

    await wait_for(empty, timeout=10, what="the cycling message to be dropped")
    assert await queue.get(no_ack=True, fail=False) is None
    await channel.declare_queue("", exclusive=True)  # the connection is fine


async def test_a_malformed_x_death_count_neither_breaks_expiry_nor_the_broker(
    rabbit: Any, connection: AbstractConnection, name: str
) -> None:
    channel = await connection.channel(publisher_confirms=True)
    dead = await channel.declare_queue(f"{name}.dead", exclusive=True)
    arguments = {"x-message-ttl": 50, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead.name}
    await channel.declare_queue(name, exclusive=True, arguments=arguments)
    poison = {"x-death": [{"count": "abc", "queue": name, "reason": "expired", "exchange": "", "routing-keys": [name]}]}
    await channel.default_exchange.publish(aio_pika.Message(b"poison", headers=poison), name)
    # Another client's TTL queue goes on expiring afterwards.
    async with await aio_pika.connect(rabbit.amqp_url) as other:
        second = await other.channel(publisher_confirms=True)
        later = await second.declare_queue(f"{name}.later.dead", exclusive=True)
        ttl = {"x-message-ttl": 50, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": later.name}
        await second.declare_queue(f"{name}.later", exclusive=True, arguments=ttl)
        await second.default_exchange.publish(aio_pika.Message(b"fine"), f"{name}.later")
        assert (await _next(later)).body == b"fine"


async def _next(queue: Any) -> Any:
    found: list[Any] = []

    async def arrived() -> bool:
        message = await queue.get(no_ack=True, fail=False)
        if message is not None:
            found.append(message)
        return bool(found)

    await wait_for(arrived, timeout=10, what=f"a message in {queue.name}")
    return found[0]


async def test_a_message_over_16_mib_is_refused(rabbit: Any, name: str) -> None:
    """RabbitMQ 4's max_message_size (3.10 takes up to 128 MiB): refused from its header, before its body."""
    if rabbit.version == "3.10":
        pytest.skip("RabbitMQ 3.10's limit is 128 MiB")
    client = await RawClient.open(rabbit.amqp_port)
    try:
        client.send(1, ChannelMethods.Open())
        await client.expect(ChannelMethods.OpenOk)
        size = 16 * 1024 * 1024 + 1
        header = encode_header_payload(size, Basic.Properties())
        client.publish(1, Basic.Publish(exchange="", routing_key=name), header, b"x" * size)
        close = await client.expect(ChannelMethods.Close)
        assert close.reply_code == 406 and "max size" in close.reply_text
    finally:
        await client.close()
