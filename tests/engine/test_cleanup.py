"""`amqp-lab cleanup` removes only what the lab can prove it declared, says what it will remove and what those
queues hold, asks first, and leaves a user's `lab.*` queues and their messages alone."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import aio_pika
import pytest
from amqp_lab.broker.management import ManagementClient
from amqp_lab.config import Settings

from tests.conftest import deadline, wait_for
from tests.engine.conftest import crashed_run, lab_objects, nothing_left

pytestmark = pytest.mark.embedded

# A user's queue that only looks like the lab's (not a run id), and one that copies a run id but was not marked.
FOREIGN = {"lab.billing.invoices": 5, "lab.abc123.orders": 2}


async def cleanup(rabbit: Any, *args: str, answer: bytes | None = None) -> tuple[int, str]:
    environment = {**os.environ, "AMQP_URL": rabbit.amqp_url, "AMQP_LAB_MANAGEMENT_URL": rabbit.management_url}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "amqp_lab", "cleanup", *args),
        env=environment,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(answer or b""), deadline(120))
    assert process.returncode is not None
    return process.returncode, output.decode()


async def messages_in(settings: Settings, queue: str) -> int:
    async with ManagementClient(settings) as management:
        stats = (await management.queue(settings.vhost, queue)).stats
    return stats.ready + stats.unacked


@pytest.mark.timeout(180)
async def test_cleanup_leaves_foreign_lab_queues_and_their_messages_alone(rabbit: Any, settings: Settings) -> None:
    connection = await aio_pika.connect(rabbit.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        for name, count in FOREIGN.items():
            await channel.declare_queue(name, durable=True)
            for n in range(count):
                body = aio_pika.Message(f"invoice {n}".encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                await channel.default_exchange.publish(body, routing_key=name)
        crashed = await crashed_run(settings, "workers", "workers.rate=0")
        tasks = f"lab.{crashed.run_id}.tasks"
        await channel.default_exchange.publish(aio_pika.Message(b"left"), routing_key=tasks)

        async def counted() -> bool:
            counts = [await messages_in(settings, q) for q in (*FOREIGN, tasks)]
            return counts == [*FOREIGN.values(), 1]

        await wait_for(counted, timeout=30, what="the management API to count the messages")

        # Asked, with no answer: lists what it would remove and what that holds, removes nothing.
        code, output = await cleanup(rabbit)
        assert code == 1, output
        assert f"queue {tasks} (1 message)" in output and f"exchange {tasks}" in output
        assert "nothing removed" in output
        for name in FOREIGN:
            assert f"queue {name}" in output.split("not declared by amqp-lab")[1]
        assert await lab_objects(settings, crashed.run_id) != []

        # Confirmed: the run's objects go, the user's queues and their messages stay.
        code, output = await cleanup(rabbit, answer=b"y\n")
        assert code == 0, output
        assert f"removed queue {tasks} (1 message)" in output
        assert f"removed exchange {tasks}" in output
        assert await nothing_left(settings, crashed.run_id) == []
        for name, count in FOREIGN.items():
            assert await messages_in(settings, name) == count
            assert f"removed queue {name}" not in output

        code, output = await cleanup(rabbit, "--yes")
        assert code == 0 and "nothing to remove" in output
    finally:
        channel = await connection.channel()
        for name in FOREIGN:
            await channel.queue_delete(name)
        await connection.close()
