"""What a scenario file may say, with defaults and validation: one section per pattern, a schedule, expectations.

Every suggested setting of the routing-topologies document is a field here; the
comment on it says what a user will see when it is switched.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from amqp_lab.scenario.topology import ExchangeType
from amqp_lab.scenario.units import Distribution, Duration, Positive, Rate, Share

PATTERNS = ("rpc", "map-reduce", "workers", "pub-sub", "custom")
Pattern = Literal["rpc", "map-reduce", "workers", "pub-sub", "custom"]
PublishMode = Literal["confirms", "transactions", "none"]
Count = Annotated[int, Field(ge=0)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RpcOptions(Section):
    requesters: Count = 2
    handlers: Count = 2
    rate: Rate = 20.0  # requests per second per requester
    limit: Count | None = None  # each requester stops after this many requests
    timeout: Duration = 1.0  # a request without a reply after this is a timeout
    # server-named: exclusive, auto-delete, named by the broker (the document's suggestion)
    reply_queue: Literal["server-named", "direct-reply-to", "named"] = "server-named"
    persistent: bool = False  # the document suggests non-persistent requests for throughput
    mandatory: bool = True  # an unroutable request comes back as a return instead of vanishing
    immediate: bool = False  # RabbitMQ 3.0+ closes the connection (540 NOT_IMPLEMENTED)
    ttl0_dead_letter: bool = False  # the documented replacement: request queue TTL 0 + dead-letter exchange
    unroutable: Share = 0.0  # share of requests sent to a method no handler serves
    prefetch: Positive = 10
    processing: Distribution = Distribution(kind="exponential", mean=0.02)
    payload: Count = 128


class MapReduceOptions(Section):
    shards: Positive = 3
    submitters: Positive = 1
    rate: Rate = 5.0  # jobs per second per submitter
    limit: Count | None = None
    # fanout: every shard gets the whole job; direct: the mapper sends each shard its part by key
    exchange: Literal["fanout", "direct"] = "fanout"
    # wait-for-all: reliable, nothing lost, partial results kept until the missing shard is back
    # deadline: a partial result after `deadline`; later shard results are counted and discarded
    policy: Literal["wait-for-all", "deadline"] = "deadline"
    deadline: Duration = 1.0
    reply: bool = True  # the combined result goes back to the submitter through reply_to
    persistent: bool | None = None  # default: on for wait-for-all, off for deadline
    publish_mode: PublishMode | None = None  # default: confirms for wait-for-all, none for deadline
    prefetch: Positive = 10
    processing: Distribution = Distribution(kind="exponential", mean=0.05)
    payload: Count = 256

    @property
    def reliable(self) -> bool:
        return self.policy == "wait-for-all"


class WorkersOptions(Section):
    workers: Count = 3
    producers: Positive = 1
    rate: Rate = 50.0  # tasks per second per producer
    limit: Count | None = None
    prefetch: Positive = 10  # how many unacked tasks a worker may hold
    ack: Literal["manual", "auto"] = "manual"  # auto: a crashed worker loses the tasks it held
    processing: Distribution = Distribution(kind="exponential", mean=0.05)
    persistent: bool = True  # tasks are written to disk and survive a broker restart
    publish_mode: PublishMode = "confirms"
    sink: str | None = None  # record results to a .jsonl file or a .sqlite database
    max_length: Count | None = None  # x-max-length of the work queue
    overflow: Literal["drop-head", "reject-publish", "reject-publish-dlx"] = "drop-head"
    payload: Count = 256

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
    publishers: Positive = 2
    rate: Rate = 20.0  # events per second per publisher
    limit: Count | None = None
    exchange: ExchangeType = "topic"  # topic lets each subscriber choose by pattern; try direct to see why
    # the key space: every region.service.event combination
    regions: list[str] = ["eu", "us", "ap"]
    services: list[str] = ["orders", "billing", "shipping"]
    events: list[str] = ["created", "paid", "cancelled"]
    subscribers: dict[str, list[str]] = DEFAULT_SUBSCRIBERS
    # reliable: durable exchange and queues, persistent events; an offline subscriber keeps its events
    reliable: bool = True
    publish_mode: PublishMode = "confirms"  # or transactions, the slower alternative
    mandatory: bool = False  # the document: publishers do not know their consumers; on, unwanted events return
    prefetch: Positive = 20
    processing: Distribution = Distribution(kind="fixed", mean=0.002)
    payload: Count = 128

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
    payload: Count = 128


class ConsumerEntry(Section):
    name: str
    queue: str
    prefetch: Positive = 10
    ack: Literal["manual", "auto"] = "manual"
    processing: Distribution = Distribution()
    reply: bool = False  # answer messages that carry reply_to


class CustomOptions(Section):
    exchanges: list[ExchangeEntry] = []
    queues: list[QueueEntry] = []
    bindings: list[BindingEntry] = []
    publishers: list[PublisherEntry] = []
    consumers: list[ConsumerEntry] = []


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
ACTIONS: tuple[str, ...] = get_args(Action)


class ScheduledAction(Section):
    """At `at` seconds into the run, do `action` to `client` (a client name, or a role for add/remove/rate)."""

    at: Duration
    action: Action
    client: str
    value: float | None = None  # the new rate for `rate`, the slow-down factor for `slow`
    lasting: Duration | None = Field(default=None, alias="for")  # undo the fault after this long

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _value(self) -> ScheduledAction:
        if self.action == "rate" and self.value is None:
            raise ValueError("action 'rate' needs a value: the new rate per second")
        return self


EXPECTABLE = (
    "lost",
    "timeouts",
    "late_replies",
    "orphan_replies",
    "returns",
    "nacked",
    "partial_jobs",
    "pending_jobs",
    "late_results",
    "missed",
    "immediate_refused",
)


class Scenario(Section):
    pattern: Pattern
    name: str = ""
    description: str = ""
    duration: Duration = 10.0
    drain: Duration = 3.0  # after the producers stop, how long consumers may finish their work
    seed: int = 1
    safety_expires: Duration = 3600.0  # x-expires on durable queues: a crashed run's queues go away
    rpc: RpcOptions = RpcOptions()
    map_reduce: MapReduceOptions = Field(default=MapReduceOptions(), alias="map-reduce")
    workers: WorkersOptions = WorkersOptions()
    pub_sub: PubSubOptions = Field(default=PubSubOptions(), alias="pub-sub")
    custom: CustomOptions = CustomOptions()
    schedule: list[ScheduledAction] = []
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
        return getattr(self, self.pattern.replace("-", "_"))

    @property
    def title(self) -> str:
        return self.name or self.pattern
