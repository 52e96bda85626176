"""scripts/seed_broker.py deletes what it declared when it is told to stop, also run in the background, where the
shell starts it with SIGINT ignored (it ran on, and a second Ctrl-C could not end it either)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import seed_broker

from tests.conftest import deadline

SCRIPT = Path(seed_broker.__file__)


def in_the_background() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `seed_broker.py &` in a script inherits it


async def seeded_names(rabbit: Any) -> list[str]:
    """The broker's queues and exchanges the script declares (its idle queues, its shop), by name."""
    async with httpx.AsyncClient(base_url=rabbit.management_url, auth=("guest", "guest")) as api:
        names = [q["name"] for q in (await api.get("/api/queues", params={"columns": "name"})).json()]
        names += [e["name"] for e in (await api.get("/api/exchanges", params={"columns": "name"})).json()]
    return [name for name in names if name.startswith((seed_broker.IDLE, seed_broker.SHOP))]


@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "kill"])
async def test_the_seed_script_stopped_in_the_background_leaves_nothing(rabbit: Any, stop_with: int) -> None:
    if rabbit.version != "3.10":
        pytest.skip("the script's signals are its own: one broker version is enough")
    command = [sys.executable, str(SCRIPT), "--url", rabbit.amqp_url, "--queues", "20"]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, preexec_fn=in_the_background
    )
    try:
        assert process.stdout is not None
        said = b""
        async with asyncio.timeout(deadline(60)):
            while b"the shop is busy" not in said:
                said += await process.stdout.readline()
        assert len(await seeded_names(rabbit)) > 20  # the idle queues and the shop's
        process.send_signal(stop_with)
        output, _ = await asyncio.wait_for(process.communicate(), deadline(60))
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 0, output.decode()
    assert "Traceback" not in output.decode()
    assert await seeded_names(rabbit) == []
