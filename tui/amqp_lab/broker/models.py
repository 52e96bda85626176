"""What the management API tells about a broker, as small immutable records.

Parsing is strict about shape (a list where a list belongs, numbers where
numbers belong) and lenient about absence: brokers of different versions and
statistics modes leave fields out, and a missing figure is zero or None.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from amqp_lab.broker.errors import ManagementBadResponse


def expect_object(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ManagementBadResponse(f"management API sent {type(data).__name__} for {what}, expected an object")
    return data


def expect_list(data: Any, what: str) -> list[Mapping[str, Any]]:
    if not isinstance(data, list) or not all(isinstance(item, Mapping) for item in data):
        raise ManagementBadResponse(f"management API sent a malformed list for {what}")
    return data


def _path(data: Mapping[str, Any], dotted: str) -> Any:
    value: Any = data
    for key in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def number(data: Mapping[str, Any], dotted: str, what: str) -> float:
    value = _path(data, dotted)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManagementBadResponse(f"management API sent {value!r} for {what} {dotted}, expected a number")
    return float(value)


def text(data: Mapping[str, Any], key: str, what: str, default: str = "") -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ManagementBadResponse(f"management API sent {value!r} for {what} {key}, expected text")
    return value


@dataclass(frozen=True)
class MessageRates:
    """Messages per second, as the broker's statistics last reported them."""

    publish: float = 0.0
    deliver: float = 0.0
    ack: float = 0.0
    confirm: float = 0.0
    redeliver: float = 0.0
    returned: float = 0.0

    @classmethod
    def parse(cls, stats: Any, what: str) -> MessageRates:
        stats = stats if isinstance(stats, Mapping) else {}
        return cls(
            publish=number(stats, "publish_details.rate", what),
            deliver=number(stats, "deliver_get_details.rate", what),
            ack=number(stats, "ack_details.rate", what),
            confirm=number(stats, "confirm_details.rate", what),
            redeliver=number(stats, "redeliver_details.rate", what),
            returned=number(stats, "return_unroutable_details.rate", what),
        )


@dataclass(frozen=True)
class MessageTotals:
    """Messages counted since the object was created; rates are derived from their changes."""

    publish: float = 0.0
    deliver: float = 0.0
    ack: float = 0.0

    @classmethod
    def parse(cls, stats: Any, what: str) -> MessageTotals:
        stats = stats if isinstance(stats, Mapping) else {}
        return cls(
            publish=number(stats, "publish", what),
            deliver=number(stats, "deliver_get", what),
            ack=number(stats, "ack", what),
        )


@dataclass(frozen=True)
class Overview:
    product: str
    version: str
    erlang_version: str
    management_version: str
    node: str
    cluster_name: str
    rates_mode: str
    default_queue_type: str | None  # RabbitMQ 4.x says; 3.x has none (classic)
    connections: int
    channels: int
    exchanges: int
    queues: int
    consumers: int
    messages: int
    messages_ready: int
    messages_unacked: int
    rates: MessageRates
    totals: MessageTotals = MessageTotals()

    @classmethod
    def parse(cls, data: Any) -> Overview:
        data = expect_object(data, "the overview")
        what = "overview"
        totals = expect_object(data.get("object_totals") or {}, "object_totals")
        queued = expect_object(data.get("queue_totals") or {}, "queue_totals")
        return cls(
            product=text(data, "product_name", what, "RabbitMQ"),
            version=text(data, "rabbitmq_version", what, "unknown"),
            erlang_version=text(data, "erlang_version", what, "unknown"),
            management_version=text(data, "management_version", what, "unknown"),
            node=text(data, "node", what),
            cluster_name=text(data, "cluster_name", what),
            rates_mode=text(data, "rates_mode", what, "basic"),
            default_queue_type=text(data, "default_queue_type", what) or None,
            connections=int(number(totals, "connections", what)),
            channels=int(number(totals, "channels", what)),
            exchanges=int(number(totals, "exchanges", what)),
            queues=int(number(totals, "queues", what)),
            consumers=int(number(totals, "consumers", what)),
            messages=int(number(queued, "messages", what)),
            messages_ready=int(number(queued, "messages_ready", what)),
            messages_unacked=int(number(queued, "messages_unacknowledged", what)),
            rates=MessageRates.parse(data.get("message_stats"), what),
            totals=MessageTotals.parse(data.get("message_stats"), what),
        )


def node_names(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    names = data.get(key) or []
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ManagementBadResponse(f"management API sent malformed {key}, expected a list of node names")
    return tuple(names)


def node_labels(names: list[str]) -> dict[str, str]:
    """The shortest part of each node name that tells them apart: rabbit@host1 and rabbit@host2 are host1
    and host2; lab-1@localhost and lab-2@localhost are lab-1 and lab-2."""
    for part in (0, 2):
        shown = {name: name.partition("@")[part] or name for name in names}
        if len(set(shown.values())) == len(shown):
            return shown
    return {name: name for name in names}


@dataclass(frozen=True)
class NodeStatus:
    """One node of the cluster, as the management API sees it."""

    name: str
    running: bool
    memory_alarm: bool
    disk_alarm: bool
    partitions: tuple[str, ...]  # nodes this one cannot see: a network partition

    COLUMNS = "name,running,mem_alarm,disk_free_alarm,partitions"

    @property
    def state(self) -> str:
        if not self.running:
            return "down"
        alarms = [kind for kind, on in (("memory", self.memory_alarm), ("disk", self.disk_alarm)) if on]
        if alarms:
            return " and ".join(alarms) + " alarm"
        return "partitioned" if self.partitions else "running"

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> NodeStatus:
        return cls(
            name=text(data, "name", "node"),
            running=bool(data.get("running")),
            memory_alarm=bool(data.get("mem_alarm")),
            disk_alarm=bool(data.get("disk_free_alarm")),
            partitions=node_names(data, "partitions"),
        )


@dataclass(frozen=True)
class QueueStats:
    name: str
    vhost: str
    type: str
    state: str
    ready: int
    unacked: int
    consumers: int
    rates: MessageRates
    totals: MessageTotals = MessageTotals()
    leader: str = ""  # the node a classic queue lives on, or a quorum queue's or stream's leader
    members: tuple[str, ...] = ()  # the nodes holding a replica (quorum queues and streams)
    online: tuple[str, ...] = ()  # the members that are up

    @property
    def key(self) -> str:
        """Unique across vhosts; used as the row key in tables."""
        return f"{self.vhost}\x00{self.name}"

    # The columns= list that fetches exactly what parse() reads.
    COLUMNS = (
        "name,vhost,type,state,messages_ready,messages_unacknowledged,consumers,"
        "message_stats.publish_details.rate,message_stats.deliver_get_details.rate,"
        "message_stats.ack_details.rate,message_stats.redeliver_details.rate,"
        "message_stats.publish,message_stats.deliver_get,message_stats.ack,node,leader,members,online"
    )

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> QueueStats:
        what = "queue"
        return cls(
            leader=text(data, "leader", what) or text(data, "node", what),
            members=node_names(data, "members"),
            online=node_names(data, "online"),
            name=text(data, "name", what),
            vhost=text(data, "vhost", what, "/"),
            type=text(data, "type", what, "classic"),
            state=text(data, "state", what, "running"),
            ready=int(number(data, "messages_ready", what)),
            unacked=int(number(data, "messages_unacknowledged", what)),
            consumers=int(number(data, "consumers", what)),
            rates=MessageRates.parse(data.get("message_stats"), what),
            totals=MessageTotals.parse(data.get("message_stats"), what),
        )


@dataclass(frozen=True)
class QueuePage:
    items: tuple[QueueStats, ...]
    page: int
    page_count: int
    total_count: int
    filtered_count: int


@dataclass(frozen=True)
class QueueArguments:
    """A queue's name, the arguments it was declared with, and what it holds: enough to tell whose it is."""

    name: str
    arguments: Mapping[str, Any]
    messages: int

    COLUMNS = "name,arguments,messages"

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> QueueArguments:
        what = "queue"
        return cls(
            name=text(data, "name", what),
            arguments=expect_object(data.get("arguments") or {}, "queue arguments"),
            messages=int(number(data, "messages", what)),
        )


@dataclass(frozen=True)
class Vhost:
    name: str
    messages: int

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Vhost:
        return cls(name=text(data, "name", "vhost"), messages=int(number(data, "messages", "vhost")))


@dataclass(frozen=True)
class Exchange:
    name: str
    vhost: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool
    publish_in: float  # messages per second
    publish_out: float
    arguments: Mapping[str, Any] = field(default_factory=dict)
    totals: MessageTotals = MessageTotals()  # publish: messages in, deliver: messages routed on

    COLUMNS = (
        "name,vhost,type,durable,auto_delete,internal,arguments,"
        "message_stats.publish_in_details.rate,message_stats.publish_out_details.rate,"
        "message_stats.publish_in,message_stats.publish_out"
    )

    @property
    def key(self) -> str:
        return f"{self.vhost}\x00{self.name}"

    @property
    def alternate(self) -> str | None:
        value = self.arguments.get("alternate-exchange")
        return value if isinstance(value, str) and value else None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Exchange:
        what = "exchange"
        return cls(
            name=text(data, "name", what),
            vhost=text(data, "vhost", what, "/"),
            type=text(data, "type", what),
            durable=bool(data.get("durable")),
            auto_delete=bool(data.get("auto_delete")),
            internal=bool(data.get("internal")),
            publish_in=number(data, "message_stats.publish_in_details.rate", what),
            publish_out=number(data, "message_stats.publish_out_details.rate", what),
            arguments=expect_object(data.get("arguments") or {}, "exchange arguments"),
            totals=MessageTotals(
                publish=number(data, "message_stats.publish_in", what),
                deliver=number(data, "message_stats.publish_out", what),
            ),
        )


@dataclass(frozen=True)
class Binding:
    source: str
    vhost: str
    destination: str
    destination_type: str
    routing_key: str
    arguments: Mapping[str, Any]

    @property
    def destination_key(self) -> str:
        """The destination's key, as QueueStats.key (and Exchange.key) spell it."""
        return f"{self.vhost}\x00{self.destination}"

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Binding:
        what = "binding"
        arguments = data.get("arguments") or {}
        return cls(
            source=text(data, "source", what),
            vhost=text(data, "vhost", what, "/"),
            destination=text(data, "destination", what),
            destination_type=text(data, "destination_type", what),
            routing_key=text(data, "routing_key", what),
            arguments=expect_object(arguments, "binding arguments"),
        )


@dataclass(frozen=True)
class Consumer:
    queue: str
    vhost: str
    consumer_tag: str
    channel: str
    prefetch: int
    ack_required: bool
    active: bool

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Consumer:
        what = "consumer"
        queue = expect_object(data.get("queue") or {}, "consumer queue")
        channel = expect_object(data.get("channel_details") or {}, "consumer channel")
        return cls(
            queue=text(queue, "name", what),
            vhost=text(queue, "vhost", what, "/"),
            consumer_tag=text(data, "consumer_tag", what),
            channel=text(channel, "name", what),
            prefetch=int(number(data, "prefetch_count", what)),
            ack_required=bool(data.get("ack_required")),
            active=bool(data.get("active", True)),
        )


@dataclass(frozen=True)
class ClientConnection:
    name: str
    vhost: str
    user: str
    peer: str
    state: str
    channels: int
    client_name: str = ""  # what the client named it (connection_name in its properties): which program it is
    tls: bool = False
    heartbeat: int = 0  # seconds, as negotiated; 0 is off
    # Bytes from and to the client so far. Not a rate: RabbitMQ 3.10 lists recv_oct_details.rate as 0.0 while
    # bytes flow (the reader's statistics come in steps), and a lab does not show a figure it cannot stand by.
    received: int = 0
    sent: int = 0

    COLUMNS = "name,vhost,user,peer_host,peer_port,state,channels,user_provided_name,ssl,timeout,recv_oct,send_oct"

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ClientConnection:
        what = "connection"
        return cls(
            name=text(data, "name", what),
            vhost=text(data, "vhost", what, "/"),
            user=text(data, "user", what),
            peer=f"{text(data, 'peer_host', what)}:{int(number(data, 'peer_port', what))}",
            state=text(data, "state", what),
            channels=int(number(data, "channels", what)),
            client_name=text(data, "user_provided_name", what),
            tls=data.get("ssl") is True,
            heartbeat=int(number(data, "timeout", what)),
            received=int(number(data, "recv_oct", what)),
            sent=int(number(data, "send_oct", what)),
        )


@dataclass(frozen=True)
class Channel:
    name: str
    vhost: str
    connection: str
    prefetch: int
    unacked: int
    consumers: int
    confirm: bool
    ack_rate: float = 0.0
    acks: float = 0.0  # acks received on it so far: its steady ack rate is derived from them (broker/rates.py)

    COLUMNS = (
        "name,vhost,connection_details.name,prefetch_count,messages_unacknowledged,consumer_count,confirm,"
        "message_stats.ack,message_stats.ack_details.rate"
    )

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Channel:
        what = "channel"
        connection = expect_object(data.get("connection_details") or {}, "channel connection")
        return cls(
            name=text(data, "name", what),
            vhost=text(data, "vhost", what, "/"),
            connection=text(connection, "name", what),
            prefetch=int(number(data, "prefetch_count", what)),
            unacked=int(number(data, "messages_unacknowledged", what)),
            consumers=int(number(data, "consumer_count", what)),
            confirm=bool(data.get("confirm")),
            ack_rate=number(data, "message_stats.ack_details.rate", what),
            acks=number(data, "message_stats.ack", what),
        )


@dataclass(frozen=True)
class QueueDetail:
    """One queue in full: its figures, flags, arguments, policy and consumers."""

    stats: QueueStats
    durable: bool
    auto_delete: bool
    exclusive: bool
    node: str
    arguments: Mapping[str, Any]
    policy: str
    operator_policy: str
    effective_policy: Mapping[str, Any]  # the policy and operator policy merged by the broker
    consumers: tuple[Consumer, ...]  # as /api/consumers lists them

    COLUMNS = (
        QueueStats.COLUMNS + ",durable,auto_delete,exclusive,arguments,policy,operator_policy,"
        "effective_policy_definition,consumer_details"
    )

    @classmethod
    def parse(cls, data: Any) -> QueueDetail:
        data = expect_object(data, "a queue")
        what = "queue"
        return cls(
            stats=QueueStats.parse(data),
            durable=bool(data.get("durable")),
            auto_delete=bool(data.get("auto_delete")),
            exclusive=bool(data.get("exclusive")),
            node=text(data, "node", what),
            arguments=expect_object(data.get("arguments") or {}, "queue arguments"),
            policy=text(data, "policy", what),
            operator_policy=text(data, "operator_policy", what),
            effective_policy=expect_object(data.get("effective_policy_definition") or {}, "queue policy"),
            consumers=tuple(Consumer.parse(c) for c in expect_list(data.get("consumer_details") or [], what)),
        )


@dataclass(frozen=True)
class ChannelActivity:
    """What tells whether a channel's consumers make progress: unacked and acks so far."""

    name: str
    unacked: int
    acked: int  # acks since the channel opened
    ack_rate: float
    consumers: int

    @classmethod
    def parse(cls, data: Any) -> ChannelActivity:
        data = expect_object(data, "a channel")
        what = "channel"
        return cls(
            name=text(data, "name", what),
            unacked=int(number(data, "messages_unacknowledged", what)),
            acked=int(number(data, "message_stats.ack", what)),
            ack_rate=number(data, "message_stats.ack_details.rate", what),
            consumers=int(number(data, "consumer_count", what)),
        )


@dataclass(frozen=True)
class PeekedMessage:
    """A message read with ack_requeue_true: the broker gave it back, marked redelivered."""

    payload: bytes
    size: int  # the whole payload's size; `payload` may be truncated
    redelivered: bool
    exchange: str
    routing_key: str
    properties: Mapping[str, Any]
    remaining: int  # messages left in the queue after this one was taken

    @property
    def headers(self) -> Mapping[str, Any]:
        headers = self.properties.get("headers")
        return headers if isinstance(headers, Mapping) else {}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> PeekedMessage:
        what = "message"
        payload = text(data, "payload", what)
        if text(data, "payload_encoding", what, "string") == "base64":
            try:
                body = base64.b64decode(payload, validate=True)
            except binascii.Error:
                raise ManagementBadResponse("management API sent a message payload that is not base64") from None
        else:
            body = payload.encode()
        return cls(
            payload=body,
            size=int(number(data, "payload_bytes", what)),
            redelivered=bool(data.get("redelivered")),
            exchange=text(data, "exchange", what),
            routing_key=text(data, "routing_key", what),
            properties=expect_object(data.get("properties") or {}, "message properties"),
            remaining=int(number(data, "message_count", what)),
        )
