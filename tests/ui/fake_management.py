"""A lab without a broker whose management API is a fake transport: for the faults a real RabbitMQ will not give
on demand (an API that answers 503 for a while, one that holds its answers until told)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine

import httpx
from amqp_lab.broker.management import ManagementClient
from amqp_lab.config import build
from amqp_lab.ui.offline import OfflineLab

Answer = Callable[[httpx.Request], httpx.Response] | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


class FakeManagementLab(OfflineLab):
    def __init__(self, answer: Answer, timeout: float) -> None:
        super().__init__()
        settings = build({"amqp_url": "amqp://guest:guest@rabbit:5672/", "timeout": timeout})
        self._client = ManagementClient(settings, transport=httpx.MockTransport(answer))

    @property
    def management(self) -> ManagementClient:
        return self._client
