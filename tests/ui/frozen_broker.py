"""A broker as the explorer would see it, fixed: the same screen on every machine, for layout snapshots.

The figures are of a plausible small broker with a workers run going; nothing connects.
"""

from __future__ import annotations

import time
from dataclasses import replace

from amqp_lab.broker.connection import Backoff, ConnectionState, ConnectionStatus
from amqp_lab.broker.models import (
    Binding,
    Channel,
    ChannelActivity,
    ClientConnection,
    Consumer,
    Exchange,
    MessageRates,
    NodeStatus,
    Overview,
    QueueDetail,
    QueueStats,
)
from amqp_lab.broker.poller import BrokerSnapshot
from amqp_lab.ui.app import AmqpLabApp

from tests.ui.test_snapshots import unreachable_lab

NODE = "rabbit@lab-host"
OVERVIEW = Overview(
    product="RabbitMQ",
    version="3.10.8",
    erlang_version="25.2.3",
    management_version="3.10.8",
    node=NODE,
    cluster_name="rabbit@lab-host",
    rates_mode="basic",
    default_queue_type=None,
    connections=5,
    channels=7,
    exchanges=9,
    queues=6,
    consumers=6,
    messages=1_284,
    messages_ready=1_212,
    messages_unacked=72,
    rates=MessageRates(publish=412.5, deliver=398.0, ack=396.5),
)


def queue(
    name: str, counts: tuple[int, int, int], rates: tuple[float, float, float], kind: str = "classic"
) -> QueueStats:
    ready, unacked, consumers = counts
    members = (NODE,) if kind == "quorum" else ()
    return QueueStats(
        name,
        "/",
        kind,
        "running",
        ready,
        unacked,
        consumers,
        MessageRates(*rates),
        leader=NODE,
        members=members,
        online=members,
    )


QUEUES = (
    queue("lab.f00d42.tasks", (1_180, 64, 3), (400.0, 386.0, 384.5), "quorum"),
    queue("orders.created", (0, 3, 1), (12.5, 12.0, 12.0)),
    queue("orders.dead-letter", (32, 0, 0), (0.0, 0.0, 0.0)),
    queue("payments.settlement-requests-from-the-eu-west-region", (0, 5, 2), (0.0, 0.0, 0.0)),
    queue("amq.gen-MVWslrNuNWapVbcWknIkvQ", (0, 0, 0), (0.0, 0.0, 0.0)),
)
EXCHANGES = tuple(
    Exchange(name, "/", kind, durable=True, auto_delete=False, internal=False, publish_in=rate, publish_out=rate)
    for name, kind, rate in (
        ("", "direct", 0.0),
        ("amq.direct", "direct", 0.0),
        ("amq.fanout", "fanout", 0.0),
        ("amq.topic", "topic", 0.0),
        ("lab.f00d42.tasks", "direct", 400.0),
        ("orders", "topic", 12.5),
        ("orders.dlx", "fanout", 0.0),
    )
)
CONNECTIONS = tuple(
    ClientConnection(
        f"127.0.0.1:{port} -> 127.0.0.1:5672",
        "/",
        user,
        f"127.0.0.1:{port}",
        "running",
        channels,
        client,
        tls=tls,
        heartbeat=60,
        received=received,
        sent=sent,
    )
    for port, user, channels, client, tls, received, sent in (
        (50412, "guest", 1, "run f00d42 producer-1", False, 48_213_004, 2_104),
        (50418, "guest", 2, "run f00d42 worker-1", False, 52_880, 16_202_330),
        (50424, "guest", 2, "run f00d42 worker-2", False, 52_104, 16_100_881),
        (50431, "orders-service", 1, "orders-api (pod orders-7d9f-x2x)", True, 1_204_330, 88_100),
        (50440, "billing", 1, "", True, 2_200, 1_100_230),
    )
)
CHANNELS = tuple(
    Channel(f"{connection.name} ({number})", "/", connection.name, prefetch, unacked, consumers, confirm, ack_rate)
    for connection, number, prefetch, unacked, consumers, confirm, ack_rate in (
        (CONNECTIONS[0], 1, 0, 0, 0, True, 0.0),
        (CONNECTIONS[1], 1, 10, 10, 1, False, 130.5),
        (CONNECTIONS[2], 1, 10, 9, 1, False, 129.0),
        (CONNECTIONS[3], 1, 50, 3, 1, True, 12.0),
        (CONNECTIONS[4], 1, 1, 1, 1, False, 0.0),
    )
)
CONSUMERS = tuple(
    Consumer(queue_name, "/", tag, channel.name, channel.prefetch, ack_required=True, active=True)
    for queue_name, tag, channel in (
        ("lab.f00d42.tasks", "amq.ctag-worker-1", CHANNELS[1]),
        ("lab.f00d42.tasks", "amq.ctag-worker-2", CHANNELS[2]),
        ("orders.created", "orders-api-1", CHANNELS[3]),
        ("payments.settlement-requests-from-the-eu-west-region", "billing-settler", CHANNELS[4]),
    )
)


def frozen_broker() -> BrokerSnapshot:
    now = time.monotonic()
    return BrokerSnapshot(
        overview=OVERVIEW,
        queues=QUEUES,
        matching=len(QUEUES),
        name_filter="",
        error=None,
        taken_at=now,
        fresh_at=now,
        exchanges=EXCHANGES,
        connections=CONNECTIONS,
        channels=CHANNELS,
        consumers=CONSUMERS,
        nodes=(NodeStatus(NODE, running=True, memory_alarm=False, disk_alarm=False, partitions=()),),
    )


SLOW = QUEUES[3]  # a queue with two consumers, one of them holding its prefetch
DETAIL = QueueDetail(
    stats=SLOW,
    durable=True,
    auto_delete=False,
    exclusive=False,
    node=NODE,
    arguments={"x-max-length": 10_000, "x-overflow": "reject-publish", "x-dead-letter-exchange": "orders.dlx"},
    policy="",
    operator_policy="",
    effective_policy={},
    consumers=(CONSUMERS[3], replace(CONSUMERS[3], consumer_tag="billing-settler-2", channel=CHANNELS[3].name)),
)
BOUND_BY = [
    Binding("", "/", SLOW.name, "queue", SLOW.name, {}),
    Binding("payments", "/", SLOW.name, "queue", "eu.settlement.#", {}),
]


class FrozenManagement:
    """The answers the queue screen asks for, fixed (only the frozen lab's screens call it)."""

    async def queue(self, vhost: str, name: str) -> QueueDetail:
        return DETAIL

    async def channel_activity(self, name: str) -> ChannelActivity:
        channel = next(c for c in CHANNELS if c.name == name)
        return ChannelActivity(name, channel.unacked, int(channel.acks), channel.ack_rate, channel.consumers)

    async def queue_bindings(self, vhost: str, name: str) -> list[Binding]:
        return BOUND_BY


class FrozenBrokerLab(AmqpLabApp):
    """The explorer on the frozen broker: no poll, no connection, the same snapshot throughout."""

    def _start(self) -> None:
        self.amqp_status = ConnectionStatus(ConnectionState.CONNECTED, self.settings.primary.display())
        self.snapshot = frozen_broker()

    @property
    def management(self) -> FrozenManagement:  # type: ignore[override]
        return FrozenManagement()


def frozen_broker_lab() -> FrozenBrokerLab:
    return FrozenBrokerLab(unreachable_lab().settings, backoff=Backoff(0.2, 1.0))
