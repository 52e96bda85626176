"""The embedded broker in a process of its own, so a busy broker never stalls the lab that started it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
AMQP_PORT = 5672
MANAGEMENT_PORT = 15672


def answers(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    """Whether something accepts connections there."""
    with socket.socket() as probe:
        probe.settimeout(timeout)
        return probe.connect_ex((host, port)) == 0


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports: all held open until all are picked, or two could come out the same."""
    with contextlib.ExitStack() as held:
        probes = [held.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


class BrokerStartFailed(Exception):
    """The embedded broker did not come up; the message has its own words."""


class BrokerProcess:
    """`amqp-lab broker` on loopback ports, started and stopped from here; user guest/guest."""

    def __init__(self, amqp_port: int, management_port: int, options: Sequence[str] = ()) -> None:
        """`options`: more `amqp-lab broker` flags (TLS, limits)."""
        self.amqp_port = amqp_port
        self.management_port = management_port
        self.options = tuple(options)
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def on_usual_ports(cls) -> BrokerProcess:
        """5672 and 15672 when free (tools and habits expect them), free ports otherwise."""
        spare_amqp, spare_management = free_ports(2)
        amqp = AMQP_PORT if not answers(AMQP_PORT) else spare_amqp
        management = MANAGEMENT_PORT if not answers(MANAGEMENT_PORT) else spare_management
        return cls(amqp, management)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}/"

    def start(self) -> None:
        """Until both ports answer; BrokerStartFailed with the broker's own words when it cannot start."""
        command = [sys.executable, "-m", "amqp_lab", "broker", "--port", str(self.amqp_port)]
        command += ["--management-port", str(self.management_port), *self.options, "--until-stdin-closes"]
        # This process holds the broker's stdin: however it ends, killed included, the broker reads the end of it
        # and stops; it is never left listening with guest/guest on 5672.
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not (answers(self.amqp_port) and answers(self.management_port)):
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode().strip() if self._process.stderr else ""
                raise BrokerStartFailed(error or f"the embedded broker exited with {self._process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerStartFailed(f"the embedded broker did not listen within {START_TIMEOUT:g} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """As a shutdown: clients are told the broker goes (320); everything it held goes."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the broker reads the end of its input and shuts down, telling its clients
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            with contextlib.suppress(OSError):
                process.stderr.close()
