"""Rows for the explorer's connection, channel and consumer tables: what each column shows."""

from __future__ import annotations

from rich.text import Text

from amqp_lab.broker.models import Channel, ClientConnection, Consumer
from amqp_lab.ui.colors import WARN
from amqp_lab.ui.text import inert, rate

CONNECTION_COLUMNS = (
    "connection",
    "client's name",
    "vhost",
    "user",
    "state",
    "TLS",
    "heartbeat",
    "bytes in",
    "bytes out",
    "channels",
)
CHANNEL_COLUMNS = ("channel", "vhost", "prefetch", "unacked", "consumers", "ack/s", "confirms")
CONSUMER_COLUMNS = ("queue", "vhost", "consumer", "prefetch", "unacked", "ack/s", "ack mode", "active", "channel")


def prefetch_cell(prefetch: int) -> Text:
    return Text(str(prefetch) if prefetch else "unlimited", justify="right")


def _count(value: int) -> Text:
    return Text(f"{value:,}", justify="right")


def connection_row(connection: ClientConnection) -> tuple[Text, ...]:
    """The connection's name is its peer and the broker's address, as RabbitMQ names it."""
    return (
        inert(connection.name),
        inert(connection.client_name) if connection.client_name else Text("–", style="dim"),
        inert(connection.vhost),
        inert(connection.user),
        inert(connection.state),
        Text("yes" if connection.tls else "no"),
        Text(f"{connection.heartbeat} s" if connection.heartbeat else "off", justify="right"),
        _count(connection.received),
        _count(connection.sent),
        _count(connection.channels),
    )


def channel_row(channel: Channel) -> tuple[Text, ...]:
    full = channel.prefetch and channel.unacked >= channel.prefetch
    return (
        inert(channel.name),
        inert(channel.vhost),
        prefetch_cell(channel.prefetch),
        Text(f"{channel.unacked:,}", style=WARN if full else "", justify="right"),
        _count(channel.consumers),
        Text(rate(channel.ack_rate), justify="right"),
        Text("on" if channel.confirm else "off"),
    )


def consumer_row(consumer: Consumer, channel: Channel | None) -> tuple[Text, ...]:
    """`channel` is the consumer's channel, for what it holds unacked and acks: RabbitMQ counts those per channel."""
    unacked = (
        Text("?", style="dim", justify="right") if channel is None else Text(f"{channel.unacked:,}", justify="right")
    )
    if channel is not None and consumer.prefetch and channel.unacked >= consumer.prefetch:
        unacked.stylize(WARN)
    return (
        inert(consumer.queue),
        inert(consumer.vhost),
        inert(consumer.consumer_tag),
        prefetch_cell(consumer.prefetch),
        unacked,
        Text("?" if channel is None else rate(channel.ack_rate), justify="right"),
        Text("manual" if consumer.ack_required else "auto"),
        Text("yes" if consumer.active else "no (single active consumer waiting)"),
        inert(consumer.channel),
    )


def consumer_key(consumer: Consumer) -> str:
    return f"{consumer.channel}\x00{consumer.consumer_tag}"
