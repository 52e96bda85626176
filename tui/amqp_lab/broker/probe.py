"""What of a broker can be reached: the check a workshop attendee runs first."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from amqp_lab.broker.connection import open_connection
from amqp_lab.broker.errors import AmqpError, ManagementError
from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.models import Overview
from amqp_lab.config import Endpoint, Settings


@dataclass(frozen=True)
class ProbeResult:
    endpoint: Endpoint | None  # the node that answered AMQP
    amqp_error: AmqpError | None
    overview: Overview | None
    management_error: ManagementError | None

    @property
    def amqp_ok(self) -> bool:
        return self.amqp_error is None

    @property
    def management_ok(self) -> bool:
        return self.management_error is None


async def probe(settings: Settings) -> ProbeResult:
    """Try AMQP (each node in order) and the management API at the same time."""
    amqp, management = await asyncio.gather(_probe_amqp(settings), _probe_management(settings))
    return ProbeResult(*amqp, *management)


async def _probe_amqp(settings: Settings) -> tuple[Endpoint | None, AmqpError | None]:
    error: AmqpError | None = None
    for endpoint in settings.endpoints:
        try:
            connection = await open_connection(settings, endpoint)
        except AmqpError as exc:
            error = exc
            continue
        await connection.close()
        return endpoint, None
    return None, error


async def _probe_management(settings: Settings) -> tuple[Overview | None, ManagementError | None]:
    async with ManagementClient(settings) as client:
        try:
            return await client.overview(), None
        except ManagementError as exc:
            return None, exc
