"""RabbitMQ's x-death header: the newest entry says why and from which queue a message was dead-lettered."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def newest_death(headers: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first x-death entry (RabbitMQ puts the newest first), or None if the message was never dead-lettered."""
    deaths = headers.get("x-death")
    first = deaths[0] if isinstance(deaths, list) and deaths else None
    return first if isinstance(first, Mapping) else None
