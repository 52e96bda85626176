"""A scenario made concrete for one run: the topology with run-scoped names, and the simulated clients."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from amqp_lab.amqp.model import Binding, Queue, Topology
from amqp_lab.scenario.units import Distribution

PublishMode = Literal["confirms", "transactions", "none"]


@dataclass(frozen=True, kw_only=True)
class PublisherSpec:
    """Publishes to an exchange at a rate, cycling over routing keys."""

    name: str
    role: str
    exchange: str
    routing_keys: tuple[str, ...]
    rate: float | None  # None: as fast as the broker confirms
    limit: int | None = None
    persistent: bool = True
    mandatory: bool = False
    publish_mode: PublishMode = "confirms"
    payload: int = 128
    headers: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True, kw_only=True)
class ConsumerSpec:
    """Consumes a queue; works for `processing`; answers reply_to when `reply`; may own its queue."""

    name: str
    role: str
    queue: str
    prefetch: int = 10
    auto_ack: bool = False
    processing: Distribution = field(default_factory=Distribution)
    reply: bool = False  # answer messages that carry reply_to
    reply_persistent: bool = False
    reply_mode: PublishMode = "none"
    # Mandatory answers come back when their queue is gone (RPC: the caller left); that needs confirms.
    reply_mandatory: bool = True
    sink: str | None = None
    own_queue: Queue | None = None  # declared (and bound) by this client: a subscriber's queue
    own_bindings: tuple[Binding, ...] = ()  # a subscriber's patterns (bound by the run when it has no own queue)
    offset: str | float | None = None  # a stream reader's start: first, last, next, or seconds back
    joins_after: float = 0.0  # starts this long into the run instead of at its start


@dataclass(frozen=True, kw_only=True)
class RequesterSpec:
    """An RPC client: requests with reply_to and correlation_id, a timeout per request."""

    name: str
    role: str
    exchange: str
    routing_key: str
    unroutable_key: str
    unroutable: float
    rate: float | None
    limit: int | None
    timeout: float
    reply_queue: Literal["server-named", "direct-reply-to", "named"]
    reply_queue_name: str | None  # for "named": declared exclusive by the requester
    persistent: bool
    mandatory: bool
    immediate: bool
    payload: int


@dataclass(frozen=True, kw_only=True)
class SubmitterSpec:
    """Map-reduce client: submits jobs (fanout) or partial jobs per shard key (direct); awaits combined results."""

    name: str
    role: str
    exchange: str
    shard_keys: tuple[str, ...]  # empty for fanout: one message reaches every shard
    shards: int
    result_queue: str
    rate: float | None
    limit: int | None
    persistent: bool
    publish_mode: PublishMode
    payload: int
    want_reply: bool
    job_timeout: float  # a job with no combined result after this is counted pending


@dataclass(frozen=True, kw_only=True)
class ReducerSpec:
    """Combines shard results per job: wait-for-all (hold until complete) or deadline (partial after T)."""

    name: str
    role: str
    queue: str
    policy: Literal["wait-for-all", "deadline"]
    deadline: float
    persistent: bool
    publish_mode: PublishMode


ClientSpec = PublisherSpec | ConsumerSpec | RequesterSpec | SubmitterSpec | ReducerSpec
PRODUCING = (PublisherSpec, RequesterSpec, SubmitterSpec)  # clients that publish at a rate of their own


@dataclass(frozen=True)
class Plan:
    """Everything a run declares and starts. `prefix` scopes every name to the run."""

    pattern: str
    prefix: str
    topology: Topology
    clients: tuple[ClientSpec, ...]
    notes: tuple[str, ...] = ()  # what the options mean for this run, shown by the CLI and the TUI

    def clone(self, role: str, name: str) -> ClientSpec | None:
        """A new client of `role`, like the last one, named `name` (for "add a worker" while running)."""
        template = next((c for c in reversed(self.clients) if c.role == role), None)
        if template is None:
            return None
        if isinstance(template, ConsumerSpec) and template.own_queue is not None:
            queue = replace(template.own_queue, name=f"{self.prefix}{role}.{name}")
            bindings = tuple(replace(b, destination=queue.name) for b in template.own_bindings)
            return replace(template, name=name, queue=queue.name, own_queue=queue, own_bindings=bindings)
        return replace(template, name=name)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.role for c in self.clients))
