"""The agent processes a run starts on this machine (--processes): one `amqp-lab agent --for-run` each, serving
that run alone, so the run's clients use every core instead of one.

They get the lab's settings in their environment, never on a command line, where `ps` would show a password.
The run holds their standard input: however the run ends, killed included, they read its end and stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import replace

from amqp_lab.config import Settings

STOP_TIMEOUT = 10.0


class LocalAgents:
    def __init__(self, settings: Settings, run_id: str, count: int) -> None:
        self._settings = settings
        self._run_id = run_id
        # The number first: a narrow clients table ends the name with an ellipsis, and the run id is in the header.
        self.names = tuple(f"process-{number}-{run_id}" for number in range(1, count + 1))
        self._processes: list[asyncio.subprocess.Process] = []
        self._last_words: dict[str, str] = {}
        self._listening: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        environment = {**os.environ, **replace(self._settings, agents=0, processes=0).environment()}
        for name in self.names:
            command = ["-m", "amqp_lab", "agent", "--name", name, "--for-run", self._run_id, "--until-stdin-closes"]
            self._processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    *command,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    env=environment,
                )
            )
            self._listening.append(asyncio.get_running_loop().create_task(self._listen(name, self._processes[-1])))

    async def _listen(self, name: str, process: asyncio.subprocess.Process) -> None:
        """Keep each process's last line (what it serves, why it could not); read all, so none blocks on a
        full pipe."""
        assert process.stdout is not None
        async for line in process.stdout:
            if line.strip():
                self._last_words[name] = line.decode(errors="replace").strip()

    async def first_ended(self) -> str:
        """Once one of the processes ends: what the ended ones said last (why an agent could not serve)."""
        waits = [asyncio.ensure_future(process.wait()) for process in self._processes]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        said = []
        for name, process, listening in zip(self.names, self._processes, self._listening, strict=True):
            if process.returncode is not None:
                await asyncio.gather(listening, return_exceptions=True)  # its output read to the end
                said.append(f"{name} ended ({process.returncode}): {self._last_words.get(name, 'it said nothing')}")
        return "; ".join(said)

    async def stop(self) -> None:
        """Each process reads the end of its input and ends; one that does not within STOP_TIMEOUT is killed."""
        for process in self._processes:
            if process.stdin is not None:
                process.stdin.close()

        async def ended(process: asyncio.subprocess.Process) -> None:
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

        await asyncio.gather(*(ended(process) for process in self._processes))
        await asyncio.gather(*self._listening, return_exceptions=True)
