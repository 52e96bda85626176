"""Protocol cases with one expected outcome, run on RabbitMQ 3.10, 4.0 and the embedded broker alike: reply codes,
delivery order, redelivered flags, x-death, returns before confirms, exclusive and auto-delete lifecycles."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import aio_pika
import aiormq.exceptions
import httpx
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from amqp_lab.broker.management import ManagementClient
from amqp_lab.config import Settings
from amqp_lab.engine.publishing import reply_code
from pamqp.commands import Basic

from tests.conftest import wait_for

pytestmark = pytest.mark.embedded


async def refused(operation: Awaitable[Any]) -> int | None:
    """The reply code the broker closed the channel or connection with."""
    with pytest.raises((aiormq.exceptions.AMQPError, ConnectionError)) as caught:
        await operation
    return reply_code(caught.value)


async def test_the_broker_announces_the_capabilities_clients_rely_on(connection: AbstractConnection) -> None:
    capabilities = connection.transport.connection.server_capabilities  # type: ignore[union-attr]
    for name in (
        "publisher_confirms", "basic.nack", "consumer_cancel_notify", "exchange_exchange_bindings",
        "connection.blocked", "authentication_failure_close", "per_consumer_qos", "direct_reply_to",
    ):  # fmt: skip
        assert capabilities.get(name) is True, name


async def test_reply_codes_for_what_is_missing_reserved_or_different(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel()
    assert await refused(channel.declare_queue(name, passive=True)) == 404
    channel = await connection.channel()
    assert await refused(channel.declare_exchange(name, passive=True)) == 404
    channel = await connection.channel()
    assert await refused(channel.declare_queue("amq.mine")) == 403
    channel = await connection.channel()
    assert await refused(channel.declare_exchange("amq.mine", "direct")) == 403
    channel = await connection.channel()
    await channel.declare_queue(name, durable=True, arguments={"x-message-ttl": 1000})
    assert await refused(channel.declare_queue(name, durable=True, arguments={"x-message-ttl": 2000})) == 406
    channel = await connection.channel()
    assert await refused(channel.declare_queue(name, durable=False)) == 406
    channel = await connection.channel()
    queue = await channel.get_queue(name, ensure=False)
    missing = await channel.get_exchange(f"{name}.missing", ensure=False)
    assert await refused(queue.bind(missing, "key")) == 404
    channel = await connection.channel()
    await channel.queue_delete(name)


async def test_publishing_to_a_missing_exchange_closes_the_channel(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel(publisher_confirms=True)
    missing = await channel.get_exchange(name, ensure=False)
    assert await refused(missing.publish(aio_pika.Message(b"x"), "key")) == 404
    assert channel.is_closed
    assert not connection.is_closed


async def test_an_exclusive_queue_is_locked_to_its_connection_and_goes_with_it(rabbit: Any, name: str) -> None:
    owner = await aio_pika.connect(rabbit.amqp_url)
    other = await aio_pika.connect(rabbit.amqp_url)
    try:
        await (await owner.channel()).declare_queue(name, exclusive=True)
        assert await refused((await other.channel()).declare_queue(name, passive=True)) == 405
        await owner.close()

        async def gone() -> bool:
            channel = await other.channel()
            try:
                await channel.declare_queue(name, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return True
            await channel.close()
            return False

        await wait_for(gone, timeout=10, what="the exclusive queue to go with its connection")
    finally:
        await other.close()


async def test_an_auto_delete_queue_goes_when_its_last_consumer_does(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel()
    queue = await channel.declare_queue(name, auto_delete=True)
    first = await queue.consume(lambda m: m.ack())
    second = await queue.consume(lambda m: m.ack())
    await queue.cancel(first)
    await channel.declare_queue(name, passive=True, auto_delete=True)  # one consumer left: still there
    await queue.cancel(second)
    probe = await connection.channel()
    assert await refused(probe.declare_queue(name, passive=True)) == 404


async def test_server_named_queues(connection: AbstractConnection) -> None:
    queue = await (await connection.channel()).declare_queue("", exclusive=True)
    assert queue.name.startswith("amq.gen-")


async def test_requeued_messages_come_back_in_order_flagged_redelivered(
    connection: AbstractConnection, name: str
) -> None:
    channel = await connection.channel()
    queue = await channel.declare_queue(name, exclusive=True)
    for n in range(5):
        await channel.default_exchange.publish(aio_pika.Message(str(n).encode()), name)
    first = [await queue.get(no_ack=False) for _ in range(3)]
    assert [m.body for m in first] == [b"0", b"1", b"2"] and not any(m.redelivered for m in first)
    await first[1].nack(requeue=True)
    await first[0].reject(requeue=True)
    again = [await queue.get(no_ack=False) for _ in range(4)]
    # Requeued messages go back to their place: 0 and 1 before 3 and 4, and they say they were delivered before.
    assert [(m.body, m.redelivered) for m in again] == [(b"0", True), (b"1", True), (b"3", False), (b"4", False)]
    await first[2].ack()
    holder = await connection.channel()
    held = await holder.get_queue(name, ensure=False)
    await asyncio.gather(*(m.ack() for m in again))
    assert await held.get(fail=False) is None


async def test_unacked_messages_return_when_their_channel_closes(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel()
    queue = await channel.declare_queue(name, exclusive=True)
    for n in range(3):
        await channel.default_exchange.publish(aio_pika.Message(str(n).encode()), name)
    consumer_channel = await connection.channel()
    await consumer_channel.set_qos(prefetch_count=2)
    received: list[AbstractIncomingMessage] = []
    consumed = await consumer_channel.get_queue(name, ensure=False)
    await consumed.consume(received.append)
    await wait_for(lambda: len(received) == 2, timeout=5, what="two deliveries (prefetch 2)")
    await asyncio.sleep(0.2)
    assert len(received) == 2  # the prefetch holds the third back
    await consumer_channel.close()
    bodies = [(m.body, m.redelivered) for m in [await queue.get(no_ack=True) for _ in range(3)]]
    assert bodies == [(b"0", True), (b"1", True), (b"2", False)]


async def test_an_unknown_delivery_tag_closes_the_channel(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel()
    queue = await channel.declare_queue(name, exclusive=True)
    await channel.default_exchange.publish(aio_pika.Message(b"x"), name)
    message = await queue.get(no_ack=False)
    await message.ack()
    await channel.channel.basic_ack(message.delivery_tag)  # twice
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await channel.declare_queue(name, passive=True)  # the close arrives with the next round trip


async def test_a_mandatory_unroutable_message_is_returned_before_its_confirm(connection: AbstractConnection) -> None:
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.get_exchange("amq.direct", ensure=False)
    result = await exchange.publish(aio_pika.Message(b"x"), "nobody-listens", mandatory=True)
    # aio-pika answers with the return only when it came before the ack, as RabbitMQ sends them.
    assert not isinstance(result, Basic.Ack)
    routed = await channel.declare_queue("", exclusive=True)
    await routed.bind(exchange, "somebody")
    assert isinstance(await exchange.publish(aio_pika.Message(b"x"), "somebody", mandatory=True), Basic.Ack)


async def test_immediate_closes_the_connection_with_540(connection: AbstractConnection) -> None:
    channel = await connection.channel(publisher_confirms=True)
    assert await refused(channel.default_exchange.publish(aio_pika.Message(b"x"), "anything", immediate=True)) == 540


async def dead_letter_setup(channel: AbstractChannel, name: str, **arguments: Any) -> tuple[Any, Any]:
    dlx = await channel.declare_exchange(f"{name}.dlx", "fanout", auto_delete=True)
    dead = await channel.declare_queue(f"{name}.dead", exclusive=True)
    await dead.bind(dlx)
    source = await channel.declare_queue(
        name, exclusive=True, arguments={"x-dead-letter-exchange": dlx.name, **arguments}
    )
    return source, dead


async def test_x_death_records_a_rejection(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel()
    source, dead = await dead_letter_setup(channel, name)
    await channel.default_exchange.publish(aio_pika.Message(b"x", headers={"mine": 1}), name)
    message = await source.get(no_ack=False)
    await message.reject(requeue=False)
    letter = await wait_for_message(dead)
    death = letter.headers["x-death"][0]
    assert death["count"] == 1
    assert death["reason"] == "rejected"
    assert death["queue"] == name
    assert death["exchange"] == ""
    assert list(death["routing-keys"]) == [name]
    assert letter.headers["x-first-death-reason"] == "rejected"
    assert letter.headers["x-first-death-queue"] == name
    assert letter.headers["mine"] == 1


async def test_expiry_at_the_head_the_lower_ttl_wins_and_is_recorded(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel()
    _, dead = await dead_letter_setup(channel, name, **{"x-message-ttl": 60_000})
    await channel.default_exchange.publish(aio_pika.Message(b"short", expiration=0.05), name)
    letter = await wait_for_message(dead)
    assert letter.body == b"short"
    death = letter.headers["x-death"][0]
    assert death["reason"] == "expired"
    assert str(death["original-expiration"]) == "50"
    assert letter.expiration is None  # the per-message TTL is removed on dead-lettering


async def test_max_length_drop_head_dead_letters_the_oldest(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel()
    source, dead = await dead_letter_setup(channel, name, **{"x-max-length": 2})
    for n in range(3):
        await channel.default_exchange.publish(aio_pika.Message(str(n).encode()), name)
    letter = await wait_for_message(dead)
    assert letter.body == b"0" and letter.headers["x-death"][0]["reason"] == "maxlen"
    assert [(await source.get(no_ack=True)).body for _ in range(2)] == [b"1", b"2"]


async def test_reject_publish_overflow_nacks(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel(publisher_confirms=True)
    await channel.declare_queue(name, exclusive=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    assert isinstance(await channel.default_exchange.publish(aio_pika.Message(b"1"), name), Basic.Ack)
    with pytest.raises(aio_pika.exceptions.DeliveryError):
        await channel.default_exchange.publish(aio_pika.Message(b"2"), name)


async def test_transactions_publish_on_commit_only(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel(publisher_confirms=False)
    queue = await channel.declare_queue(name, exclusive=True)
    transaction = channel.transaction()
    await transaction.select()
    await channel.default_exchange.publish(aio_pika.Message(b"rolled back"), name)
    await transaction.rollback()
    await channel.default_exchange.publish(aio_pika.Message(b"committed"), name)
    assert await queue.get(fail=False) is None
    await transaction.commit()
    assert (await wait_for_message(queue)).body == b"committed"
    assert await queue.get(fail=False) is None


async def test_topic_and_headers_routing(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel()
    topic = await channel.declare_exchange(f"{name}.topic", "topic", auto_delete=True)
    headers = await channel.declare_exchange(f"{name}.headers", "headers", auto_delete=True)
    queues = {key: await channel.declare_queue(f"{name}.{i}", exclusive=True) for i, key in enumerate("abcd")}
    await queues["a"].bind(topic, "eu.*.paid")
    await queues["b"].bind(topic, "#.paid")
    await queues["c"].bind(headers, arguments={"x-match": "any", "region": "eu", "kind": "refund"})
    await queues["d"].bind(headers, arguments={"x-match": "all", "region": "eu", "kind": "refund"})
    await topic.publish(aio_pika.Message(b"1"), "eu.orders.paid")
    await topic.publish(aio_pika.Message(b"2"), "paid")  # `#` matches zero words
    await topic.publish(aio_pika.Message(b"3"), "eu..paid")  # `*` matches the empty word
    await headers.publish(aio_pika.Message(b"4", headers={"region": "eu", "kind": "order"}), "")
    await headers.publish(aio_pika.Message(b"5", headers={"region": "eu", "kind": "refund"}), "")
    got = {key: await drain(queue) for key, queue in queues.items()}
    assert got == {"a": [b"1", b"3"], "b": [b"1", b"2", b"3"], "c": [b"4", b"5"], "d": [b"5"]}


async def test_an_alternate_exchange_takes_what_no_binding_does(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel()
    alternate = await channel.declare_exchange(f"{name}.ae", "fanout", auto_delete=True)
    caught = await channel.declare_queue(f"{name}.caught", exclusive=True)
    await caught.bind(alternate)
    main = await channel.declare_exchange(
        f"{name}.main", "direct", auto_delete=True, arguments={"alternate-exchange": alternate.name}
    )
    bound = await channel.declare_queue(f"{name}.bound", exclusive=True)
    await bound.bind(main, "known")
    await main.publish(aio_pika.Message(b"known"), "known")
    await main.publish(aio_pika.Message(b"unknown"), "unknown")
    assert await drain(bound) == [b"known"]
    assert await drain(caught) == [b"unknown"]


async def test_exchange_to_exchange_bindings(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel()
    front = await channel.declare_exchange(f"{name}.front", "topic", auto_delete=True)
    back = await channel.declare_exchange(f"{name}.back", "fanout", auto_delete=True)
    await back.bind(front, "orders.#")
    queue = await channel.declare_queue(f"{name}.q", exclusive=True)
    await queue.bind(back)
    await front.publish(aio_pika.Message(b"yes"), "orders.eu")
    await front.publish(aio_pika.Message(b"no"), "refunds.eu")
    assert await drain(queue) == [b"yes"]


async def test_direct_reply_to(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel()
    server_queue = await channel.declare_queue(name, exclusive=True)

    async def answer(request: AbstractIncomingMessage) -> None:
        await channel.default_exchange.publish(aio_pika.Message(b"answer:" + request.body), request.reply_to or "")
        await request.ack()

    await server_queue.consume(answer)
    client = await connection.channel()
    replies: list[AbstractIncomingMessage] = []
    reply_queue = await client.get_queue("amq.rabbitmq.reply-to", ensure=False)
    await reply_queue.consume(replies.append, no_ack=True)
    await client.default_exchange.publish(aio_pika.Message(b"q", reply_to="amq.rabbitmq.reply-to"), name)
    await wait_for(lambda: len(replies) == 1, timeout=5, what="the reply")
    assert replies[0].body == b"answer:q"
    other = await connection.channel()
    assert (
        await refused(other.default_exchange.publish(aio_pika.Message(b"q", reply_to="amq.rabbitmq.reply-to"), name))
        == 406
    )


async def test_a_ttl0_message_goes_to_a_consumer_with_room_as_it_arrives(
    connection: AbstractConnection, name: str
) -> None:
    """TTL 0 is the documented stand-in for immediate: delivered if a consumer can take it now, else expired."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=10)
    queue = await channel.declare_queue(name, exclusive=True, arguments={"x-message-ttl": 0})
    got: list[bytes] = []

    async def take(message: AbstractIncomingMessage) -> None:
        got.append(message.body)

    await queue.consume(take, no_ack=True)
    for n in range(5):
        await channel.default_exchange.publish(aio_pika.Message(b"%d" % n), name)
    await wait_for(lambda: len(got) == 5, timeout=5, what="every message delivered")
    assert got == [b"0", b"1", b"2", b"3", b"4"]


async def test_a_mandatory_answer_to_direct_reply_to_is_delivered_and_returned(
    rabbit: Any, connection: AbstractConnection, name: str
) -> None:
    """RabbitMQ 3.10 and 4.0 deliver a mandatory publish to an amq.rabbitmq.reply-to.* name and return it too
    (312 NO_ROUTE: the pseudo-queue is not a route); the lab counts such an answer once (docs/rabbitmq-versions.md)."""
    client = await connection.channel()
    replies: list[AbstractIncomingMessage] = []

    async def take(message: AbstractIncomingMessage) -> None:
        replies.append(message)

    reply_queue = await client.get_queue("amq.rabbitmq.reply-to", ensure=False)
    await reply_queue.consume(take, no_ack=True)
    requests = await client.declare_queue(name, exclusive=True)
    await client.default_exchange.publish(aio_pika.Message(b"q", reply_to="amq.rabbitmq.reply-to"), name)
    request = await requests.get(timeout=5)
    answerer = await aio_pika.connect(rabbit.amqp_url)
    try:
        channel = await answerer.channel(publisher_confirms=True, on_return_raises=False)
        returns: list[AbstractIncomingMessage] = []
        channel.return_callbacks.add(lambda _channel, message: returns.append(message))
        outcome = await channel.default_exchange.publish(aio_pika.Message(b"a"), request.reply_to or "", mandatory=True)
        await wait_for(lambda: bool(replies and returns), timeout=5, what="the answer delivered and returned")
    finally:
        await answerer.close()
    assert [r.body for r in replies] == [b"a"] and [r.body for r in returns] == [b"a"]
    assert not isinstance(outcome, Basic.Ack)  # what the publisher is told: returned


async def test_a_consumer_is_told_when_its_queue_is_deleted(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel()
    queue = await channel.declare_queue(name, exclusive=True)
    tag = await queue.consume(lambda m: m.ack())
    consumers = channel.channel.consumers  # aiormq drops a consumer when the broker's basic.cancel arrives
    assert tag in consumers
    await (await connection.channel()).queue_delete(name)
    await wait_for(lambda: tag not in consumers, timeout=5, what="basic.cancel from the broker")
    assert not channel.is_closed


async def test_an_unused_queue_expires(connection: AbstractConnection, name: str, settings: Settings) -> None:
    channel = await connection.channel()
    await channel.declare_queue(name, durable=True, arguments={"x-expires": 300})

    async def gone() -> bool:  # asked of the management API: a passive declare would count as a use
        async with ManagementClient(settings) as management:
            queues, _ = await management.queues(settings.vhost, name=f"^{name}$")
        return not queues

    await wait_for(gone, timeout=10, what="the unused queue to expire")


async def test_a_global_prefetch_is_shared_by_the_channels_consumers(connection: AbstractConnection, name: str) -> None:
    setup = await connection.channel()
    for queue in (f"{name}.1", f"{name}.2"):
        await setup.declare_queue(queue, exclusive=True)
        for _ in range(5):
            await setup.default_exchange.publish(aio_pika.Message(b"x"), queue)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=3, global_=True)
    held: list[AbstractIncomingMessage] = []
    for queue in (f"{name}.1", f"{name}.2"):
        await (await channel.get_queue(queue, ensure=False)).consume(held.append)
    await wait_for(lambda: len(held) == 3, timeout=5, what="three deliveries over both consumers")
    await asyncio.sleep(0.3)
    assert len(held) == 3  # the channel's limit, whichever queue they came from
    await held[0].ack()
    await wait_for(lambda: len(held) == 4, timeout=5, what="one more after an ack")


async def test_ack_multiple_and_recover(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel()
    queue = await channel.declare_queue(name, exclusive=True)
    for n in range(5):
        await channel.default_exchange.publish(aio_pika.Message(str(n).encode()), name)
    got = [await queue.get(no_ack=False) for _ in range(5)]
    await got[2].ack(multiple=True)  # settles 0, 1 and 2
    await channel.channel.basic_recover(requeue=True)  # 3 and 4 come back
    again = [await wait_for_message(queue) for _ in range(2)]
    assert [(m.body, m.redelivered) for m in again] == [(b"3", True), (b"4", True)]
    assert await queue.get(fail=False) is None


async def test_reject_publish_dlx_nacks_and_dead_letters(connection: AbstractConnection, name: str) -> None:
    channel = await connection.channel(publisher_confirms=True)
    _, dead = await dead_letter_setup(channel, name, **{"x-max-length": 1, "x-overflow": "reject-publish-dlx"})
    await channel.default_exchange.publish(aio_pika.Message(b"kept"), name)
    with pytest.raises(aio_pika.exceptions.DeliveryError):
        await channel.default_exchange.publish(aio_pika.Message(b"refused"), name)
    letter = await wait_for_message(dead)
    assert letter.body == b"refused" and letter.headers["x-death"][0]["reason"] == "maxlen"


async def wait_for_message(queue: Any) -> AbstractIncomingMessage:
    found: list[AbstractIncomingMessage] = []

    async def arrived() -> bool:
        message = await queue.get(no_ack=True, fail=False)
        if message is not None:
            found.append(message)
        return bool(found)

    await wait_for(arrived, timeout=5, what=f"a message in {queue.name}")
    return found[0]


async def drain(queue: Any) -> list[bytes]:
    """Every message the queue holds now, in order (published on the same channel, so all of them arrived)."""
    bodies = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        bodies.append(message.body)
    return bodies


async def test_a_quorum_queue_is_durable_and_shared_and_says_its_type(
    rabbit: Any, connection: AbstractConnection, name: str, settings: Settings
) -> None:
    quorum = {"x-queue-type": "quorum"}
    for flags in ({"durable": False}, {"durable": True, "exclusive": True}, {"durable": True, "auto_delete": True}):
        channel = await connection.channel()
        assert await refused(channel.declare_queue(f"{name}.refused", arguments=quorum, **flags)) == 406
    channel = await connection.channel()
    queue = await channel.declare_queue(name, durable=True, arguments=quorum)
    await channel.default_exchange.publish(aio_pika.Message(b"kept", delivery_mode=2), name)
    message = await queue.get(timeout=5)
    assert message.body == b"kept"
    await message.ack()
    async with ManagementClient(settings) as client:
        listed = await client.queue(settings.vhost, name)
        assert listed.stats.type == "quorum"
        assert listed.stats.members and listed.stats.leader in listed.stats.members
    assert await refused(queue.delete(if_unused=True, if_empty=False)) == 540  # what aio-pika asks by default
    again = await aio_pika.connect(rabbit.amqp_url)
    await (await again.channel()).queue_delete(name)
    await again.close()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "no-such-thing", 404),
        ("GET", "queues/%2F/no-such-queue", 404),
        ("GET", "exchanges/%2F/no-such-exchange", 404),
        ("DELETE", "overview", 405),
        ("POST", "queues", 405),
    ],
)
async def test_the_management_api_tells_an_unknown_path_from_a_wrong_method(
    settings: Settings, method: str, path: str, status: int
) -> None:
    async with httpx.AsyncClient(base_url=settings.management_base, auth=settings.management_credentials) as http:
        answer = await http.request(method, f"/api/{path}")
    assert answer.status_code == status
