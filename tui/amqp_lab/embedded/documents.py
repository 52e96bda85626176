"""The management API's documents for the embedded broker's objects, with RabbitMQ's field names, and the
message rates in them: counter differences between samples taken every second, as `message_stats.*_details.rate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from amqp_lab import __version__
from amqp_lab.embedded.queues import Queue as BrokerQueue
from amqp_lab.embedded.vhost import Vhost

if TYPE_CHECKING:
    from amqp_lab.embedded.channel import Channel
    from amqp_lab.embedded.connection import Connection
    from amqp_lab.embedded.server import Broker


PRODUCT = "amqp-lab embedded broker"


class Rates:
    """Counters sampled every second; a rate is the change between the last two samples."""

    def __init__(self) -> None:
        self._previous: dict[object, tuple[float, dict[str, int]]] = {}
        self._rates: dict[object, dict[str, float]] = {}

    def sample(self, key: object, counters: dict[str, int], now: float) -> None:
        before = self._previous.get(key)
        if before is not None and now > before[0]:
            span = now - before[0]
            self._rates[key] = {k: max(0.0, (v - before[1].get(k, 0)) / span) for k, v in counters.items()}
        self._previous[key] = (now, dict(counters))

    def stats(self, key: object, counters: dict[str, int]) -> dict[str, Any]:
        rates = self._rates.get(key, {})
        stats: dict[str, Any] = {}
        for name, value in counters.items():
            stats[name] = value
            stats[f"{name}_details"] = {"rate": round(rates.get(name, 0.0), 1)}
        return stats

    def forget(self, alive: set[object]) -> None:
        for key in [k for k in self._previous if k not in alive]:
            self._previous.pop(key, None)
            self._rates.pop(key, None)


def queue_counters(queue: BrokerQueue) -> dict[str, int]:
    s = queue.stats
    return {
        "publish": s["publish"],
        "deliver_get": s["deliver"] + s["get"],
        "ack": s["ack"],
        "redeliver": s["redeliver"],
    }


def channel_counters(channel: Channel) -> dict[str, int]:
    s = channel.stats
    return {
        "publish": s["publish"],
        "deliver_get": s["deliver"],
        "ack": s["ack"],
        "confirm": s["confirm"],
        "redeliver": s["redeliver"],
    }


def connection_counters(connection: Connection) -> dict[str, int]:
    return {"recv_oct": connection.stats["recv_oct"], "send_oct": connection.stats["send_oct"]}


class Documents:
    """What the API says of each object; `sample` is called once a second for the rates."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.rates = Rates()

    def sample(self, now: float) -> None:
        alive: set[object] = {"overview"}
        rates = self.rates
        for vhost in self.broker.vhosts.values():
            for queue in vhost.queues.values():
                alive.add(queue)
                rates.sample(queue, queue_counters(queue), now)
            for name, counters in vhost.exchange_stats.items():
                alive.add((vhost.name, name))
                rates.sample((vhost.name, name), counters, now)
        for connection in self.broker.connections:
            alive.add(connection)
            rates.sample(connection, connection_counters(connection), now)
            for channel in connection.channels.values():
                alive.add(channel)
                rates.sample(channel, channel_counters(channel), now)
        rates.sample("overview", self._overview_counters(), now)
        rates.forget(alive)

    def channels(self) -> list[Channel]:
        return [ch for c in self.broker.connections for ch in c.channels.values()]

    def _overview_counters(self) -> dict[str, int]:
        totals = dict.fromkeys(("publish", "deliver_get", "ack", "confirm", "redeliver"), 0)
        for connection in self.broker.connections:
            for channel in connection.channels.values():
                for key, value in channel_counters(channel).items():
                    totals[key] += value
        return totals

    def overview(self) -> dict[str, Any]:
        queues = [q for v in self.broker.vhosts.values() for q in v.queues.values()]
        ready = sum(q.ready for q in queues)
        unacked = sum(q.unacked for q in queues)
        return {
            "management_version": __version__,
            "rates_mode": "basic",
            "product_name": PRODUCT,
            "product_version": __version__,
            "rabbitmq_version": __version__,
            "erlang_version": "",  # none: Python runs it (the check says which broker, not which Erlang)
            "node": self.node,
            "cluster_name": self.broker.cluster_name,
            "default_queue_type": "classic",
            "statistics_db_event_queue": 0,
            "object_totals": {
                "connections": len(self.broker.connections),
                "channels": len(self.channels()),
                "exchanges": sum(len(v.exchanges) for v in self.broker.vhosts.values()),
                "queues": len(queues),
                "consumers": sum(len(q.consumers) for q in queues),
            },
            "queue_totals": {
                "messages": ready + unacked,
                "messages_ready": ready,
                "messages_unacknowledged": unacked,
            },
            "message_stats": self.rates.stats("overview", self._overview_counters()),
            "listeners": [
                {"protocol": "amqp", "port": self.broker.amqp_port, "ip_address": self.broker.options.bind},
                {"protocol": "http", "port": self.broker.management_port, "ip_address": self.broker.options.bind},
            ],
        }

    @property
    def node(self) -> str:
        return f"embedded@{self.broker.cluster_name.partition('@')[2]}"

    def node_document(self) -> dict[str, Any]:
        """Its one node, always running; a memory alarm as RabbitMQ's (over held messages), no disk to alarm on."""
        broker = self.broker
        return {"name": self.node, "type": "disc", "running": True, "mem_alarm": broker.memory_alarm,
                "mem_used": broker.memory_used, "mem_limit": broker.options.memory_limit, "disk_free_alarm": False,
                "partitions": []}  # fmt: skip

    def vhost_document(self, vhost: Vhost) -> dict[str, Any]:
        ready = sum(q.ready for q in vhost.queues.values())
        unacked = sum(q.unacked for q in vhost.queues.values())
        return {
            "name": vhost.name,
            "messages": ready + unacked,
            "messages_ready": ready,
            "messages_unacknowledged": unacked,
            "tracing": False,
        }

    def queue_document(self, queue: BrokerQueue) -> dict[str, Any]:
        kind = queue.arguments.get("x-queue-type", "classic")
        return {
            "name": queue.name,
            "vhost": queue.vhost.name,
            "type": kind,
            "state": "running",
            "node": self.node,
            **({"leader": self.node, "members": [self.node], "online": [self.node]} if kind == "quorum" else {}),
            "durable": queue.durable,
            "auto_delete": queue.auto_delete,
            "exclusive": queue.exclusive_owner is not None,
            "arguments": queue.arguments,
            "policy": None,
            "operator_policy": None,
            "effective_policy_definition": {},
            "messages": queue.ready + queue.unacked,
            "messages_ready": queue.ready,
            "messages_unacknowledged": queue.unacked,
            "message_bytes_ready": queue.ready_bytes,
            "consumers": len(queue.consumers),
            "message_stats": self.rates.stats(queue, queue_counters(queue)),
        }

    def exchange_document(self, vhost: Vhost, name: str) -> dict[str, Any]:
        exchange = vhost.exchanges[name]
        counters = vhost.exchange_stats.get(name, {"publish_in": 0, "publish_out": 0})
        return {
            "name": name,
            "vhost": vhost.name,
            "type": exchange.type,
            "durable": exchange.durable,
            "auto_delete": exchange.auto_delete,
            "internal": exchange.internal,
            "arguments": dict(exchange.arguments),
            "message_stats": self.rates.stats((vhost.name, name), counters),
        }

    def bindings(self, vhost: Vhost) -> list[dict[str, Any]]:
        """Every binding, the default exchange's implicit one to each queue first, as RabbitMQ lists them."""
        found = [
            {
                "source": "",
                "vhost": vhost.name,
                "destination": name,
                "destination_type": "queue",
                "routing_key": name,
                "arguments": {},
                "properties_key": name,
            }
            for name in vhost.queues
        ]
        for b in vhost.bindings:
            found.append(
                {
                    "source": b.source,
                    "vhost": vhost.name,
                    "destination": b.destination,
                    "destination_type": "exchange" if b.to_exchange else "queue",
                    "routing_key": b.routing_key,
                    "arguments": dict(b.arguments),
                    "properties_key": b.routing_key or "~",
                }
            )
        return found

    def _connection_name(self, connection: Connection) -> str:
        return f"{connection.peer_host}:{connection.peer_port} -> {self.broker.options.bind}:{self.broker.amqp_port}"

    def channel_name(self, channel: Channel) -> str:
        return f"{self._connection_name(channel.connection)} ({channel.number})"

    def connection_document(self, connection: Connection) -> dict[str, Any]:
        return {
            "name": self._connection_name(connection),
            "vhost": connection.vhost.name if connection.vhost else "/",
            "user": connection.user,
            "peer_host": connection.peer_host,
            "peer_port": connection.peer_port,
            "state": "running",
            "channels": len(connection.channels),
            "protocol": "AMQP 0-9-1",
            "connected_at": int(connection.opened_at * 1000),
            "client_properties": {"connection_name": connection.name} if connection.name else {},
            **({"user_provided_name": connection.name} if connection.name else {}),  # as RabbitMQ lists it
            "ssl": connection.tls,
            "timeout": connection.heartbeat,
            **self.rates.stats(connection, connection_counters(connection)),
        }

    def channel_document(self, channel: Channel) -> dict[str, Any]:
        connection = channel.connection
        return {
            "name": self.channel_name(channel),
            "number": channel.number,
            "vhost": channel.vhost.name,
            "user": connection.user,
            "connection_details": {
                "name": self._connection_name(connection),
                "peer_host": connection.peer_host,
                "peer_port": connection.peer_port,
            },
            "prefetch_count": channel.prefetch,
            "global_prefetch_count": channel.global_prefetch,
            "messages_unacknowledged": len(channel.unacked),
            "consumer_count": len(channel.consumers),
            "confirm": channel.publishing.confirming,
            "transactional": channel.publishing.transactional,
            "state": "running",
            "message_stats": self.rates.stats(channel, channel_counters(channel)),
        }

    def consumer_document(self, consumer: Any) -> dict[str, Any]:
        channel: Channel = consumer.channel
        connection = channel.connection
        return {
            "queue": {"name": consumer.queue.name, "vhost": channel.vhost.name},
            "channel_details": {
                "name": self.channel_name(channel),
                "number": channel.number,
                "connection_name": self._connection_name(connection),
                "peer_host": connection.peer_host,
                "peer_port": connection.peer_port,
                "user": connection.user,
            },
            "consumer_tag": consumer.tag,
            "prefetch_count": consumer.prefetch,
            "ack_required": not consumer.no_ack,
            "exclusive": consumer.exclusive,
            "active": True,
            "arguments": {},
        }

    def consumers(self, vhost: Vhost) -> list[dict[str, Any]]:
        return [self.consumer_document(c) for q in vhost.queues.values() for c in q.consumers]
