"""Fixtures of the protocol cases: a connection to the broker under test, and a name no other test uses."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection


@pytest.fixture
async def connection(rabbit: Any) -> AsyncIterator[AbstractConnection]:
    opened = await aio_pika.connect(rabbit.amqp_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def name() -> str:
    return f"conformance.{secrets.token_hex(4)}"
