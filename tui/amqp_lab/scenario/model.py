"""What a scenario file may say, with defaults and validation: one section per pattern, a schedule, expectations.

Every suggested setting of the routing-topologies document is a field here; the
comment on it says what a user will see when it is switched.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from amqp_lab.amqp.model import ExchangeType
from amqp_lab.scenario.figures import EXPECTABLE
from amqp_lab.scenario.plan import PublishMode
from amqp_lab.scenario.units import (
    MAX_RATE,
    Distribution,
    Duration,
    Prefetch,
    Rate,
    Share,
    at_most,
    at_most_items,
    parse_duration,
)

Pattern = Literal["rpc", "map-reduce", "workers", "pub-sub", "custom"]
# Upper bounds, each with the reason a user is shown when a value goes past it.
MAX_CLIENTS = 500
CLIENTS_WHY = (
    "each simulated client holds its own connection in the lab's one process, which past a few hundred measures "
    "itself rather than the broker; spread more over machines with --agents"
)
MAX_PAYLOAD = 16 * 1024 * 1024
MAX_MESSAGES = 1_000_000_000
MAX_ITEMS = 1000  # entries in a list or table of a scenario (routing words, subscribers, custom objects, schedule)
ITEMS_WHY = "a topology this large is not a lab any more; split it"
Count = Annotated[int, Field(ge=0), at_most(MAX_MESSAGES, "more messages than a lab run gets through")]
Clients = Annotated[int, Field(ge=0), at_most(MAX_CLIENTS, CLIENTS_WHY)]
SomeClients = Annotated[int, Field(ge=1), at_most(MAX_CLIENTS, CLIENTS_WHY)]
Payload = Annotated[int, Field(ge=0), at_most(MAX_PAYLOAD, "RabbitMQ 4 refuses messages over 16 MiB by default")]
MAX_WORDS = 100
Words = Annotated[list[str], at_most_items(MAX_WORDS, "a routing key's word takes at most 100 values here")]
MAX_ROUTING_KEYS = 10_000  # regions x services x events: the keys publishers pick from, kept in memory
QueueType = Literal["auto", "classic", "quorum"]
QUEUE_TYPE_WHY = "auto: quorum in reliable modes (replicated, survives a node), classic otherwise (fastest)"
STREAM_OFFSETS = ("first", "last", "next")


def resolve(queue_type: str, reliable: bool) -> str:
    """The queue type `auto` stands for: quorum queues where nothing may be lost."""
    if queue_type != "auto":
        return queue_type
    return "quorum" if reliable else "classic"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def option(default: Any, why: str) -> Any:
    """A scenario option and the one line that says what switching it shows."""
    return Field(default, description=why)


class RpcOptions(Section):
    requesters: Clients = option(2, "clients that call; each waits for its own replies")
    handlers: Clients = option(2, "more handlers share the requests: shorter round trips, nothing else changes")
    rate: Rate = option(20.0, "requests per second per requester, or max")
    limit: Count | None = option(None, "each requester stops after this many requests")
    timeout: Duration = option(1.0, "a request unanswered this long is a timeout; a reply after it is late")
    reply_queue: Literal["server-named", "direct-reply-to", "named"] = option(
        "server-named", "server-named: exclusive, auto-delete, named by the broker; direct-reply-to: no queue at all"
    )
    persistent: bool = option(False, "off, as suggested: requests skip the disk, round trips are faster")
    mandatory: bool = option(True, "an unroutable request comes back as a return, so the requester fails fast")
    immediate: bool = option(False, "RabbitMQ 3.0+ refuses it by closing the connection (540 NOT_IMPLEMENTED)")
    ttl0_dead_letter: bool = option(
        False, "what replaces immediate: request queue TTL 0 and a dead-letter exchange for untaken requests"
    )
    unroutable: Share = option(0.0, "share of requests for a method no handler serves, to show mandatory at work")
    prefetch: Prefetch = option(10, "requests a handler may hold unacked")
    processing: Distribution = option(
        Distribution(kind="exponential", mean=0.02), "how long a handler works on a request"
    )
    payload: Payload = option(128, "request size in bytes")
    queue_type: QueueType = option("auto", "of the request queue; " + QUEUE_TYPE_WHY + " (persistent requests)")

    @property
    def reliable(self) -> bool:
        return self.persistent


class MapReduceOptions(Section):
    shards: SomeClients = option(3, "workers that each compute part of every job")
    submitters: SomeClients = option(1, "clients that submit jobs (and, with direct, partition them)")
    rate: Rate = option(5.0, "jobs per second per submitter, or max")
    limit: Count | None = option(None, "each submitter stops after this many jobs")
    exchange: Literal["fanout", "direct"] = option(
        "fanout", "fanout: every shard gets the whole job; direct: the mapper sends each shard its part by key"
    )
    policy: Literal["wait-for-all", "deadline"] = option(
        "deadline", "deadline: partial results after a time, late ones discarded; wait-for-all: reliable, nothing lost"
    )
    deadline: Duration = option(1.0, "with the deadline policy: how long the reducer waits for the shards")
    reply: bool = option(True, "the combined result goes back to the submitter through reply_to")
    persistent: bool | None = option(None, "unset: on for wait-for-all (reliable), off for deadline (fast)")
    publish_mode: PublishMode | None = option(None, "unset: confirms for wait-for-all, none for deadline")
    prefetch: Prefetch = option(10, "jobs a shard may hold unacked")
    processing: Distribution = option(Distribution(kind="exponential", mean=0.05), "how long a shard works on a job")
    payload: Payload = option(256, "job size in bytes")
    queue_type: QueueType = option("auto", "of the shard and result queues; " + QUEUE_TYPE_WHY + " (wait-for-all)")

    @property
    def reliable(self) -> bool:
        return self.policy == "wait-for-all"

    @property
    def resolved_persistent(self) -> bool:
        return self.reliable if self.persistent is None else self.persistent

    @property
    def resolved_publish_mode(self) -> PublishMode:
        return self.publish_mode or ("confirms" if self.reliable else "none")


class WorkersOptions(Section):
    workers: Clients = option(3, "competing consumers of one queue: add some and watch a backlog drain")
    producers: SomeClients = option(1, "clients that submit tasks")
    rate: Rate = option(50.0, "tasks per second per producer, or max")
    limit: Count | None = option(None, "each producer stops after this many tasks")
    prefetch: Prefetch = option(10, "tasks a worker may hold unacked; they are redelivered when it crashes")
    ack: Literal["manual", "auto"] = option("manual", "auto: the broker forgets a task once sent; a crash loses it")
    processing: Distribution = option(Distribution(kind="exponential", mean=0.05), "how long a task takes")
    persistent: bool = option(True, "tasks are written to disk and survive a broker restart")
    publish_mode: PublishMode = option("confirms", "confirms: the broker says each task is safe; or transactions")
    sink: str | None = option(None, "record results to a .jsonl file or a .sqlite database, to read later")
    max_length: Count | None = option(None, "x-max-length of the work queue: what happens when it is full")
    overflow: Literal["drop-head", "reject-publish", "reject-publish-dlx"] = option(
        "drop-head", "drop-head loses the oldest tasks (the ledger says lost); reject-publish nacks new ones"
    )
    payload: Payload = option(256, "task size in bytes")
    queue_type: QueueType = option("auto", "of the task queue; " + QUEUE_TYPE_WHY + " (persistent, confirmed)")

    @property
    def reliable(self) -> bool:
        return self.persistent and self.publish_mode != "none"

    @property
    def resolved_queue_type(self) -> str:
        if self.queue_type == "auto" and self.max_length is not None and self.overflow == "reject-publish-dlx":
            return "classic"  # the one overflow quorum queues lack
        return resolve(self.queue_type, self.reliable)

    @model_validator(mode="after")
    def _quorum_overflow(self) -> WorkersOptions:
        if self.queue_type == "quorum" and self.max_length is not None and self.overflow == "reject-publish-dlx":
            raise ValueError("quorum queues have no reject-publish-dlx overflow: use reject-publish or drop-head")
        return self

    @field_validator("sink")
    @classmethod
    def _sink_kind(cls, value: str | None) -> str | None:
        if value and not value.endswith((".jsonl", ".sqlite", ".db")):
            raise ValueError("the sink is a .jsonl file or a .sqlite/.db database")
        return value


DEFAULT_SUBSCRIBERS = {
    "orders": ["*.orders.*"],
    "eu-audit": ["eu.#"],
    "payments": ["*.*.paid"],
    "everything": ["#"],
}


class PubSubOptions(Section):
    publishers: SomeClients = option(2, "services that emit events")
    rate: Rate = option(20.0, "events per second per publisher, or max")
    limit: Count | None = option(None, "each publisher stops after this many events")
    exchange: ExchangeType = option("topic", "topic lets each subscriber choose by pattern; try direct to see why")
    regions: Words = option(["eu", "us", "ap"], "first word of the routing key region.service.event")
    services: Words = option(["orders", "billing", "shipping"], "second word of the routing key")
    events: Words = option(["created", "paid", "cancelled"], "third word of the routing key")
    subscribers: Annotated[dict[str, list[str]], at_most_items(MAX_CLIENTS, CLIENTS_WHY)] = option(
        DEFAULT_SUBSCRIBERS, "each subscriber's binding patterns: * is one word, # is zero or more"
    )
    reliable: bool = option(
        True, "durable exchange and queues, persistent events: a subscriber that is away finds its events waiting"
    )
    publish_mode: PublishMode = option("confirms", "confirms say each event is safe; transactions do it slower")
    mandatory: bool = option(False, "publishers do not know their consumers; on, events nobody wants come back")
    prefetch: Prefetch = option(20, "events a subscriber may hold unacked")
    processing: Distribution = option(Distribution(kind="fixed", mean=0.002), "how long a subscriber works")
    payload: Payload = option(128, "event size in bytes")
    queue_type: Literal["auto", "classic", "quorum", "stream"] = option(
        "auto", "of the subscribers' queues; stream: an append-only log a reader can replay; " + QUEUE_TYPE_WHY
    )
    late_subscriber: str | None = option(None, "with streams: this subscriber joins `joins_after` into the run")
    joins_after: Duration = option(5.0, "when the late subscriber joins")
    offset: str = option(
        "first", "where the late subscriber starts reading its stream: first, last, next, or a time ago (10s)"
    )

    @property
    def resolved_queue_type(self) -> str:
        return resolve(self.queue_type, self.reliable)

    @property
    def stream_offset(self) -> str | float:
        """first, last or next; or how many seconds back to start."""
        return self.offset if self.offset in STREAM_OFFSETS else parse_duration(self.offset)

    @model_validator(mode="after")
    def _keys_fit(self) -> PubSubOptions:
        keys = len(self.regions) * len(self.services) * len(self.events)
        if keys > MAX_ROUTING_KEYS:
            raise ValueError(
                f"regions x services x events make {keys:,} routing keys, more than the {MAX_ROUTING_KEYS:,} "
                "publishers pick from here: use fewer words"
            )
        return self

    @model_validator(mode="after")
    def _queue_type_fits(self) -> PubSubOptions:
        if self.queue_type in ("quorum", "stream") and not self.reliable:
            raise ValueError(
                f"{self.queue_type} queues are durable and shared: they need reliable = true "
                "(without it each subscriber has an exclusive classic queue)"
            )
        if self.late_subscriber is not None:
            if self.late_subscriber not in self.subscribers:
                raise ValueError(f"late_subscriber {self.late_subscriber!r} is not one of the subscribers")
            if self.resolved_queue_type != "stream":
                raise ValueError("a late subscriber reads what it missed from a stream: set queue_type = 'stream'")
        if self.offset not in STREAM_OFFSETS:
            try:
                parse_duration(self.offset)
            except ValueError:
                raise ValueError(
                    f"offset {self.offset!r}: use first, last, next, or a time ago such as 10s or 1m"
                ) from None
        return self

    @field_validator("regions", "services", "events")
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        if not value or any(not word or "." in word for word in value):
            raise ValueError("give at least one word, none empty or containing '.'")
        return value

    @field_validator("subscribers")
    @classmethod
    def _subscribers(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, patterns in value.items():
            if not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"subscriber name {name!r}: use letters, digits, - and _")
            if not patterns:
                raise ValueError(f"subscriber {name!r} has no binding pattern")
        return value


class ExchangeEntry(Section):
    name: str
    type: ExchangeType = "direct"
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    alternate: str | None = None


class QueueEntry(Section):
    """Always durable: the engine declares it and RabbitMQ 4.3 refuses shared queues that are not."""

    name: str
    arguments: dict[str, int | float | str | bool] = {}


class BindingEntry(Section):
    source: str
    destination: str
    routing_key: str = ""
    to: Literal["queue", "exchange"] = "queue"
    arguments: dict[str, int | float | str | bool] = {}


class PublisherEntry(Section):
    name: str
    exchange: str = ""
    routing_keys: list[str] = Field(min_length=1)
    headers: dict[str, int | float | str | bool] = {}
    rate: Rate = 10.0
    limit: Count | None = None
    persistent: bool = True
    mandatory: bool = False
    publish_mode: PublishMode = "confirms"
    payload: Payload = 128


class ConsumerEntry(Section):
    name: str
    queue: str
    prefetch: Prefetch = 10
    ack: Literal["manual", "auto"] = "manual"
    processing: Distribution = Distribution()
    reply: bool = Field(False, description="answer messages that carry reply_to")


HEADERS_EXCHANGES = ("amq.headers", "amq.match")


class CustomOptions(Section):
    exchanges: Annotated[list[ExchangeEntry], at_most_items(MAX_ITEMS, ITEMS_WHY)] = []
    queues: Annotated[list[QueueEntry], at_most_items(MAX_ITEMS, ITEMS_WHY)] = []
    bindings: Annotated[list[BindingEntry], at_most_items(MAX_ITEMS, ITEMS_WHY)] = []
    publishers: Annotated[list[PublisherEntry], at_most_items(MAX_ITEMS, ITEMS_WHY)] = []
    consumers: Annotated[list[ConsumerEntry], at_most_items(MAX_ITEMS, ITEMS_WHY)] = []

    @model_validator(mode="before")
    @classmethod
    def _headers_need_no_keys(cls, data: Any) -> Any:
        """A headers exchange routes on headers alone: its publishers may leave routing_keys out."""
        if not isinstance(data, dict) or not isinstance(data.get("publishers"), list):
            return data
        listed = data.get("exchanges")
        exchanges = listed if isinstance(listed, list) else []
        headers = {
            *HEADERS_EXCHANGES,
            *(e.get("name") for e in exchanges if isinstance(e, dict) and e.get("type") == "headers"),
        }
        publishers = [
            {**p, "routing_keys": [""]}
            if isinstance(p, dict) and "routing_keys" not in p and p.get("exchange") in headers
            else p
            for p in data["publishers"]
        ]
        return {**data, "publishers": publishers}


Action = Literal[
    "crash",
    "hang",
    "slow",
    "reject",
    "nack",
    "heal",
    "stop",
    "restart",
    "pause",
    "resume",
    "rate",
    "add",
    "remove",
]


class ScheduledAction(Section):
    """At `at` seconds into the run, do `action` to `client` (a client name, or a role for add/remove/rate)."""

    at: Duration
    action: Action
    client: str
    value: Annotated[float | None, at_most(MAX_RATE, "rates and slow-down factors go no higher")] = Field(
        None, description="the new rate for `rate`, the slow-down factor for `slow`"
    )
    lasting: Duration | None = Field(None, alias="for", description="undo the fault after this long")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _value(self) -> ScheduledAction:
        if self.action == "rate" and self.value is None:
            raise ValueError("action 'rate' needs a value: the new rate per second")
        return self


class Scenario(Section):
    pattern: Pattern
    name: str = Field("", description="shown in the run's title and report")
    description: str = ""
    duration: Duration = Field(10.0, gt=0, description="how long producers send: 30s, 2m (a run of 0 s sends nothing)")
    drain: Duration = Field(3.0, description="after the producers stop, how long consumers may finish their work")
    seed: int = Field(1, description="same seed, same random choices: runs you can compare")
    safety_expires: Duration = Field(3600.0, description="x-expires on durable queues: a crashed run's queues go away")
    rpc: RpcOptions = RpcOptions()
    map_reduce: MapReduceOptions = Field(default=MapReduceOptions(), alias="map-reduce")
    workers: WorkersOptions = WorkersOptions()
    pub_sub: PubSubOptions = Field(default=PubSubOptions(), alias="pub-sub")
    custom: CustomOptions = CustomOptions()
    schedule: Annotated[list[ScheduledAction], at_most_items(MAX_ITEMS, ITEMS_WHY)] = []
    # the most of each counter the run may end with; anything above fails the run (exit 1)
    expect: dict[str, Count] = {"lost": 0}

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("expect")
    @classmethod
    def _expectable(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(EXPECTABLE))
        if unknown:
            raise ValueError(f"cannot expect {', '.join(unknown)}; expectable: {', '.join(EXPECTABLE)}")
        return value

    @property
    def options(self) -> Section:
        section: Section = getattr(self, self.pattern.replace("-", "_"))
        return section

    @property
    def title(self) -> str:
        return self.name or self.pattern
