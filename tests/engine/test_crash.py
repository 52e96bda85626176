"""`kill -9` of amqp-lab during a run: exclusive queues vanish with its connections, durable ones carry x-expires,
and `amqp-lab cleanup` finds every leftover, lists it and removes it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from amqp_lab.broker.management import ManagementClient
from amqp_lab.config import Settings
from rabbitmq_node import PrivateNode

from tests.conftest import deadline, wait_for
from tests.engine.conftest import lab_objects, nothing_left


def environment(node: PrivateNode) -> dict[str, str]:
    return {**os.environ, "AMQP_URL": node.amqp_url, "AMQP_LAB_MANAGEMENT_URL": node.management_url}


async def lab_queues(settings: Settings) -> list[str]:
    async with ManagementClient(settings) as management:
        queues, _ = await management.queues(settings.vhost, name=r"^lab\.")
    return [q.name for q in queues]


async def test_a_killed_run_leaves_only_expiring_queues_and_cleanup_removes_them(
    rabbit: PrivateNode, settings: Settings
) -> None:
    command = [sys.executable, "-m", "amqp_lab", "run", "rpc", "--duration", "5m", "--set", "rpc.rate=20"]
    process = await asyncio.create_subprocess_exec(
        *command, env=environment(rabbit), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:

        async def leased() -> bool:
            return any(name.endswith(".lease") for name in await lab_queues(settings))

        await wait_for(leased, 60, "the run to declare its queues")
        run_id = next(n for n in await lab_queues(settings) if n.endswith(".lease")).split(".")[1]
        async with ManagementClient(settings) as management:
            before = {name: await management.queue(settings.vhost, name) for name in await lab_queues(settings)}
        assert any(detail.exclusive for detail in before.values())
        assert any(not detail.exclusive for detail in before.values())
    finally:
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), deadline(30))
    assert process.returncode == -signal.SIGKILL

    exclusive = {name for name, detail in before.items() if detail.exclusive}

    async def exclusive_gone() -> bool:
        return not exclusive & set(await lab_queues(settings))

    await wait_for(exclusive_gone, 30, "the exclusive queues to go with the dead connections")
    left = await lab_objects(settings, run_id)
    durable = [name for name, detail in before.items() if not detail.exclusive]
    assert durable and set(durable) <= set(left)
    for name in durable:  # what nobody removes expires on its own
        assert before[name].arguments.get("x-expires") == 3_600_000

    cleanup = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "amqp_lab", "cleanup", "--yes", env=environment(rabbit), stdout=asyncio.subprocess.PIPE
    )
    listed, _ = await asyncio.wait_for(cleanup.communicate(), deadline(120))
    assert cleanup.returncode == 0
    for name in left:
        assert name in listed.decode()  # each leftover is listed as it is removed
    assert await nothing_left(settings, run_id) == []
