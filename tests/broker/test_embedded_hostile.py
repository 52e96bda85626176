"""One client can break only its own connection on the embedded broker: after each attack a second, well-behaved
client still publishes, consumes and sees TTLs work. Also: the broker a lab starts dies with the lab, a wider
bind never goes without a password, and the management API bounds what a request can make it do."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator

import aio_pika
import httpx
import pytest
from amqp_lab.amqp.model import Binding
from amqp_lab.embedded.process import answers
from amqp_lab.embedded.server import Broker, BrokerOptions
from amqp_lab.embedded.wire import PROTOCOL_HEADER, content, encode_header_payload, encode_method
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp.commands import Basic
from pamqp.commands import Channel as ChannelMethods
from pamqp.commands import Connection as ConnectionMethods
from pamqp.commands import Queue as QueueMethods

from tests.broker.raw_client import RawClient
from tests.broker.test_embedded_broker import broker as broker_process
from tests.conftest import deadline, wait_for


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    started = Broker(BrokerOptions(amqp_port=0, management_port=0))
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


async def still_serves(broker: Broker) -> None:
    """A well-behaved client publishes, consumes, and sees a message TTL dead-letter on time."""
    async with await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{broker.amqp_port}/") as connection:
        channel = await connection.channel(publisher_confirms=True)
        dead = await channel.declare_queue("", exclusive=True)
        ttl = {"x-message-ttl": 50, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead.name}
        expiring = await channel.declare_queue("", exclusive=True, arguments=ttl)
        await channel.default_exchange.publish(aio_pika.Message(b"ttl"), expiring.name)
        plain = await channel.declare_queue("", exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"plain"), plain.name)
        assert (await plain.get(no_ack=True, timeout=5)).body == b"plain"
        found: list[bytes] = []

        async def expired() -> bool:
            message = await dead.get(no_ack=True, fail=False)
            if message is not None:
                found.append(message.body)
            return bool(found)

        await wait_for(expired, timeout=10, what="the TTL to dead-letter")


async def test_a_failure_inside_one_clients_frame_costs_that_client_alone(broker: Broker) -> None:
    """Whatever goes wrong while the broker handles a frame (here: a headers binding an older broker let in, whose
    x-match routing cannot read) closes the sender's connection with 541, not everyone's."""
    vhost = broker.vhosts["/"]
    queue = vhost.declare_queue("victim", False, True, False, False, {}, object())
    vhost.bindings.append(Binding("amq.headers", queue.name, "", {"x-match": 7, "a": "b"}))
    vhost._changed()
    attacker = await RawClient.open(broker.amqp_port)
    attacker.send(1, ChannelMethods.Open())
    await attacker.expect(ChannelMethods.OpenOk)
    properties = Basic.Properties(headers={"a": "b"})
    attacker.publish(1, Basic.Publish(exchange="amq.headers"), encode_header_payload(1, properties), b"x")
    assert await attacker.refused() == 541
    await attacker.close()
    vhost.bindings.clear()
    vhost._changed()
    await still_serves(broker)


# Frames a hostile client may send once the connection is open: any method with any arguments pamqp can encode.
methods = st.sampled_from(
    [
        lambda: ChannelMethods.Open(),
        lambda: Basic.Qos(prefetch_count=65535, global_=True),
        lambda: Basic.Publish(exchange="amq.headers", routing_key="x" * 255, mandatory=True),
        lambda: Basic.Ack(delivery_tag=2**63 - 1, multiple=True),
        lambda: Basic.Recover(requeue=False),
        lambda: Basic.Consume(queue="nowhere"),
    ]
)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(channel=st.integers(min_value=0, max_value=65535), junk=st.binary(max_size=64), method=methods)
async def test_any_frame_costs_only_its_sender(broker: Broker, channel: int, junk: bytes, method) -> None:  # type: ignore[no-untyped-def]
    attacker = await RawClient.open(broker.amqp_port)
    attacker.send(channel, method())
    attacker.writer.write(junk)
    await asyncio.sleep(0)
    await attacker.close()
    async with await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{broker.amqp_port}/") as connection:
        channel_ = await connection.channel()
        queue = await channel_.declare_queue("", exclusive=True)
        await channel_.default_exchange.publish(aio_pika.Message(b"ok"), queue.name)
        assert (await queue.get(no_ack=True, timeout=5)).body == b"ok"


async def test_a_socket_that_never_opens_a_connection_is_closed(broker: Broker, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("amqp_lab.embedded.connection.HANDSHAKE_TIMEOUT", 0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", broker.amqp_port)
    writer.write(PROTOCOL_HEADER[:4])  # and nothing more
    assert await asyncio.wait_for(reader.read(), deadline(10)) == b""  # closed by the broker
    writer.close()
    await still_serves(broker)


async def test_a_client_that_reads_nothing_is_not_buffered_for_without_bound(broker: Broker) -> None:
    """Mandatory publishes nobody routes come back as returns; a client that never reads them stops being read
    from once its unsent output passes the limit, as RabbitMQ stops reading a publisher."""
    attacker = await RawClient.open(broker.amqp_port)
    attacker.send(1, ChannelMethods.Open())
    await attacker.expect(ChannelMethods.OpenOk)
    header = encode_header_payload(65536, Basic.Properties())
    publish = Basic.Publish(exchange="amq.direct", routing_key="nobody", mandatory=True)
    chunk = (encode_method(1, publish) + content(1, header, b"r" * 65536, 131072)) * 16
    attacker.writer.transport.pause_reading()  # type: ignore[attr-defined]

    async def flood() -> None:
        while True:
            attacker.writer.write(chunk)
            await attacker.writer.drain()

    with contextlib.suppress(TimeoutError):  # the attacker's own writes block once the broker stops reading
        await asyncio.wait_for(flood(), 3)
    connection = next(c for c in broker.connections if c.peer_port == attacker.writer.get_extra_info("sockname")[1])
    buffered = connection.transport.get_write_buffer_size() if connection.transport else 0
    assert connection.paused and buffered < 64 * 1024 * 1024
    await still_serves(broker)
    await attacker.close()


@pytest.mark.parametrize("password", ["", "guest"])
async def test_a_wider_bind_never_goes_without_a_password(password: str) -> None:
    process = await broker_process("--bind", "0.0.0.0", "--password", password)
    _, err = await asyncio.wait_for(process.communicate(), deadline(20))
    assert process.returncode == 2
    assert ("an empty password" if not password else "well-known default password") in err.decode()


async def test_the_broker_a_lab_starts_dies_with_it_however_the_lab_ends() -> None:
    """A lab killed with SIGKILL must not leave guest/guest listening."""
    lab = textwrap.dedent(
        """
        import sys, time
        from amqp_lab.embedded.process import BrokerProcess, free_ports
        broker = BrokerProcess(*free_ports(2))
        broker.start()
        print(broker.amqp_port, broker.pid, flush=True)
        time.sleep(3600)
        """
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", lab, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    port, pid = map(int, (await asyncio.wait_for(process.stdout.readline(), deadline(30))).split())
    assert answers(port)
    process.send_signal(signal.SIGKILL)
    await process.wait()

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    await wait_for(gone, timeout=15, what="the orphaned broker to stop")
    assert not answers(port)


PUBLISH = "api/exchanges/%2F/amq.direct/publish"


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("api/queues/%2F?name=(a%2B)%2B%24&use_regex=true", None, None),
        ("api/queues/%2F?name=(a)%5C1&use_regex=true", None, "invalid regular expression"),
        (PUBLISH, {"routing_key": "k", "payload": "!!", "payload_encoding": "base64"}, "base64"),
        (PUBLISH, {"routing_key": "k", "payload": "x", "properties": [1]}, "JSON object"),
        (PUBLISH, {"routing_key": "k", "payload": "x", "properties": {"headers": {"h": 2**64}}}, "invalid properties"),
    ],
)
async def test_the_management_api_answers_what_it_cannot_do_with_400(
    broker: Broker, path: str, body: object, reason: str | None
) -> None:
    vhost = broker.vhosts["/"]
    for n in range(50):
        vhost.declare_queue("a" * 26 + str(n), False, True, False, False, {}, object())
    base = f"http://127.0.0.1:{broker.management_port}/"
    async with httpx.AsyncClient(base_url=base, auth=("guest", "guest"), timeout=deadline(5)) as client:
        answer = await (client.post(path, json=body) if body is not None else client.get(path))
        if reason is None:  # a pattern that backtracks forever in Python's re: RE2 answers at once
            assert answer.status_code == 200
        else:
            assert answer.status_code == 400 and reason in answer.json()["reason"], answer.text
    await still_serves(broker)


async def test_publishers_are_blocked_past_the_memory_limit_and_unblocked_below_it() -> None:
    """RabbitMQ's memory alarm: a connection that publishes past the limit gets connection.blocked and is not read
    from; once consumers take the messages away, connection.unblocked, and it goes on."""
    broker = Broker(BrokerOptions(amqp_port=0, management_port=0, memory_limit=2 * 1024 * 1024))
    await broker.start()
    publisher = await RawClient.open(broker.amqp_port)
    try:
        publisher.send(1, ChannelMethods.Open())
        await publisher.expect(ChannelMethods.OpenOk)
        publisher.send(1, QueueMethods.Declare(queue="backlog", durable=True))
        await publisher.expect(QueueMethods.DeclareOk)
        one = encode_method(1, Basic.Publish(routing_key="backlog")) + content(
            1, encode_header_payload(1024, Basic.Properties()), b"m" * 1024, 131072
        )
        blocked: list[object] = []

        async def publish_until_blocked() -> bool:
            publisher.writer.write(one * 100)
            with contextlib.suppress(TimeoutError):
                blocked.append((await asyncio.wait_for(publisher.method(), 0.05))[1])
            return any(isinstance(m, ConnectionMethods.Blocked) for m in blocked)

        await wait_for(publish_until_blocked, timeout=30, what="connection.blocked")
        assert broker.memory_alarm and broker.memory_used > broker.options.memory_limit
        async with httpx.AsyncClient(auth=("guest", "guest")) as api:
            node = (await api.get(f"http://127.0.0.1:{broker.management_port}/api/nodes")).json()[0]
        assert node["mem_alarm"] is True
        held = broker.vhosts["/"].queues["backlog"].ready
        await asyncio.sleep(0.5)
        assert broker.vhosts["/"].queues["backlog"].ready <= held + 200  # not read from: the backlog stops growing

        async with await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{broker.amqp_port}/") as consumer:
            channel = await consumer.channel()
            await (await channel.get_queue("backlog", ensure=False)).purge()  # as consumers would, faster
        assert isinstance(await publisher.expect(ConnectionMethods.Unblocked), ConnectionMethods.Unblocked)
        assert not broker.memory_alarm
    finally:
        await publisher.close()
        await broker.stop()
