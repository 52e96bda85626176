"""`amqp-lab broker`: loopback only unless asked, and then never with the default password; its user's login."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aio_pika
import aiormq.exceptions
import pytest
from amqp_lab.embedded.server import Broker, BrokerOptions
from fault_proxy import FaultProxy

from tests.conftest import deadline, wait_for


async def broker(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "amqp_lab", "broker", "--port", "0", "--management-port", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})},
    )  # fmt: skip


async def listening(process: asyncio.subprocess.Process) -> tuple[str, str]:
    """The AMQP and management URLs the broker printed once it listened."""
    assert process.stdout is not None
    lines = []
    async with asyncio.timeout(20):
        while len(lines) < 3:
            lines.append((await process.stdout.readline()).decode())
    return lines[1].split()[-1], lines[2].split()[-1]


async def stopped(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGINT)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), deadline(20))
    finally:
        if process.returncode is None:  # deaf to Ctrl-C: the test fails, and leaves no broker running
            process.kill()
            await process.wait()
    assert process.returncode == 0
    return out.decode()


@pytest.mark.parametrize("address", ["0.0.0.0", "::"])
async def test_a_non_loopback_bind_needs_a_password_that_is_not_the_default(address: str) -> None:
    process = await broker("--bind", address)
    _, err = await asyncio.wait_for(process.communicate(), deadline(20))
    assert process.returncode == 2
    assert "well-known default password" in err.decode()
    assert "give --password" in err.decode()


async def test_by_default_it_listens_on_loopback_and_lets_guest_in() -> None:
    process = await broker()
    try:
        amqp, management = await listening(process)
        assert amqp.startswith("amqp://127.0.0.1:") and management.startswith("http://127.0.0.1:")
        connection = await aio_pika.connect(amqp.replace("amqp://", "amqp://guest:guest@"))
        await connection.close()
    finally:
        assert "kept nothing" in await stopped(process)


async def test_beyond_loopback_with_its_own_user_and_password() -> None:
    process = await broker("--bind", "0.0.0.0", "--user", "lab", env={"AMQP_LAB_BROKER_PASSWORD": "s3cret-lab"})
    try:
        amqp, _ = await listening(process)
        port = amqp.rsplit(":", 1)[1].strip("/")
        with pytest.raises(aiormq.exceptions.ProbableAuthenticationError):
            await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        connection = await aio_pika.connect(f"amqp://lab:s3cret-lab@127.0.0.1:{port}/")
        await connection.close()
        assert process.returncode is None
    finally:
        out = await stopped(process)
    assert "s3cret-lab" not in out  # the password is never printed


async def test_a_port_in_use_is_a_clear_error() -> None:
    first = await broker()
    try:
        amqp, _ = await listening(first)
        port = amqp.rsplit(":", 1)[1].strip("/")
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "amqp_lab", "broker", "--port", port, "--management-port", "0",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(second.communicate(), deadline(20))
        assert second.returncode == 2
        assert "cannot listen on 127.0.0.1" in err.decode()
    finally:
        await stopped(first)
    await wait_for(lambda: first.returncode is not None, timeout=5)


async def test_max_message_size_is_the_largest_message_it_takes() -> None:
    process = await broker("--max-message-size", "1KiB")
    try:
        amqp, _ = await listening(process)
        connection = await aio_pika.connect(amqp.replace("amqp://", "amqp://guest:guest@"))
        async with connection:
            channel = await connection.channel()  # with confirms: each publish waits for the broker's answer
            queue = await channel.declare_queue(exclusive=True)
            await channel.default_exchange.publish(aio_pika.Message(b"x" * 1024), queue.name)
            with pytest.raises(
                aiormq.exceptions.ChannelPreconditionFailed, match="larger than configured max size 1024"
            ):
                await channel.default_exchange.publish(aio_pika.Message(b"x" * 1025), queue.name)
            taker = await connection.channel()
            message = await (await taker.get_queue(queue.name)).get(no_ack=True)
            assert len(message.body) == 1024
    finally:
        await stopped(process)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--max-message-size", "1T"], "RabbitMQ allows 1 byte to 512 MiB"),
        (["--max-message-size", "lots"], "give a size such as 16MB"),
        (["--tls-cert", "server.pem"], "TLS needs both --tls-cert and --tls-key"),
        (["--tls-cert", "/nowhere/server.pem", "--tls-key", "/nowhere/server.key"], "cannot use the TLS certificate"),
    ],
)
async def test_limits_and_tls_it_cannot_take_are_refused_with_the_fix(flags: list[str], says: str) -> None:
    process = await broker(*flags)
    _, err = await asyncio.wait_for(process.communicate(), deadline(20))
    assert process.returncode == 2
    assert says in err.decode() and "Traceback" not in err.decode()


async def test_heartbeats_are_sent_and_a_silent_client_is_dropped() -> None:
    broker = Broker(BrokerOptions(amqp_port=0, management_port=0))
    await broker.start()
    proxy = FaultProxy(broker.amqp_port)
    await proxy.start()
    try:
        url = proxy.url_for(f"amqp://guest:guest@127.0.0.1:{broker.amqp_port}/")
        connection = await aio_pika.connect(url + "?heartbeat=1")  # the client's value wins
        before = proxy.passed["down"]
        # Sent: an idle connection still hears from the broker, a heartbeat frame (8 bytes) every half second.
        await wait_for(lambda: proxy.passed["down"] >= before + 3 * 8, timeout=5, what="heartbeats from the broker")
        assert len(broker.connections) == 1
        # Checked: a client that goes silent (the link stalls) is dropped after two heartbeat intervals.
        proxy.stall()
        await wait_for(lambda: not broker.connections, timeout=5, what="the broker to drop the silent client")
        proxy.heal()
        await connection.close()
    finally:
        await proxy.close()
        await broker.stop()
