"""The four patterns as builders over the general topology model, plus custom topologies from a file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from amqp_lab.amqp.model import Binding, Exchange, Queue, Topology
from amqp_lab.scenario.model import (
    STREAM_OFFSETS,
    CustomOptions,
    MapReduceOptions,
    PubSubOptions,
    RpcOptions,
    Scenario,
    WorkersOptions,
    resolve,
)
from amqp_lab.scenario.plan import ConsumerSpec, Plan, PublisherSpec, ReducerSpec, RequesterSpec, SubmitterSpec

RUN_PREFIX = "lab."
# Every queue and exchange a run declares carries its run id under this argument (brokers keep arguments they do
# not know): `amqp-lab cleanup` removes only what is marked so, never a user's object that merely looks like ours.
RUN_MARKER = "amqp-lab-run"


def run_prefix(run_id: str) -> str:
    return f"{RUN_PREFIX}{run_id}."


def build(scenario: Scenario, prefix: str) -> Plan:
    """The plan for one run of `scenario`, every name starting with `prefix`."""
    builder: Callable[[Any, Scenario, str], Plan] = BUILDERS[scenario.pattern]
    return _marked(builder(scenario.options, scenario, prefix))


def run_marker(prefix: str) -> dict[str, Any]:
    """The argument that says an object was declared by the run with this prefix."""
    return {RUN_MARKER: prefix.removeprefix(RUN_PREFIX).rstrip(".")}


def _marked(plan: Plan) -> Plan:
    """The plan with the run's marker on every queue and exchange of its own (not on amq.* ones it uses)."""
    marker = run_marker(plan.prefix)

    def mark(item: Any) -> Any:
        ours = item.name.startswith(plan.prefix)
        return replace(item, arguments={**item.arguments, **marker}) if ours else item

    topology = plan.topology
    clients = tuple(
        replace(c, own_queue=mark(c.own_queue)) if isinstance(c, ConsumerSpec) and c.own_queue else c
        for c in plan.clients
    )
    marked = replace(topology, exchanges=tuple(map(mark, topology.exchanges)), queues=tuple(map(mark, topology.queues)))
    return replace(plan, topology=marked, clients=clients)


def _safety(scenario: Scenario) -> dict[str, Any]:
    """Durable queues expire when unused for a while, should a run die without cleaning up."""
    return {"x-expires": int(scenario.safety_expires * 1000)}


def _typed(scenario: Scenario, queue_type: str) -> dict[str, Any]:
    """A run's durable queue of `queue_type`, with a way to go should the run die without cleaning up."""
    if queue_type == "stream":  # a stream cannot expire: it keeps its events that long instead
        return {"x-queue-type": "stream", "x-max-age": f"{max(1, int(scenario.safety_expires))}s"}
    arguments = _safety(scenario)
    if queue_type == "quorum":
        arguments["x-queue-type"] = "quorum"
    return arguments


def _type_note(queue_type: str) -> str:
    return {
        "classic": "classic queues: on one node, fastest",
        "quorum": "quorum queues: replicated on a majority of nodes, they survive one going down",
        "stream": "streams: an append-only log; reading does not remove, a late reader can replay",
    }[queue_type]


def build_rpc(o: RpcOptions, scenario: Scenario, p: str) -> Plan:
    exchange = Exchange(f"{p}rpc", "direct")
    queue_type = resolve(o.queue_type, o.reliable)
    arguments = _typed(scenario, queue_type)
    exchanges, queues, bindings = [exchange], [], []
    clients: list[Any] = []
    if o.ttl0_dead_letter:
        unhandled = Exchange(f"{p}rpc.unhandled", "fanout")
        arguments |= {"x-message-ttl": 0, "x-dead-letter-exchange": unhandled.name}
        exchanges.append(unhandled)
        queues.append(Queue(f"{p}rpc.unhandled", arguments=_safety(scenario)))
        bindings.append(Binding(unhandled.name, f"{p}rpc.unhandled"))
        clients.append(ConsumerSpec(name="dead-letters", role="dead-letters", queue=f"{p}rpc.unhandled", prefetch=100))
    requests = Queue(f"{p}rpc.requests", arguments=arguments)
    queues.insert(0, requests)
    bindings.insert(0, Binding(exchange.name, requests.name, "compute"))
    for i in range(1, o.requesters + 1):
        name = f"requester-{i}"
        clients.append(
            RequesterSpec(
                name=name,
                role="requester",
                exchange=exchange.name,
                routing_key="compute",
                unroutable_key="no-such-method",
                unroutable=o.unroutable,
                rate=o.rate,
                limit=o.limit,
                timeout=o.timeout,
                reply_queue=o.reply_queue,
                reply_queue_name=f"{p}rpc.replies.{name}" if o.reply_queue == "named" else None,
                persistent=o.persistent,
                mandatory=o.mandatory,
                immediate=o.immediate,
                payload=o.payload,
            )
        )
    for i in range(1, o.handlers + 1):
        clients.append(
            ConsumerSpec(
                name=f"handler-{i}",
                role="handler",
                queue=requests.name,
                prefetch=o.prefetch,
                processing=o.processing,
                reply=True,
            )
        )
    notes = [
        f"reply path: {o.reply_queue}" + (" (exclusive, auto-delete)" if o.reply_queue != "direct-reply-to" else ""),
        "requests are " + ("persistent" if o.persistent else "non-persistent: faster, gone if the broker restarts"),
        "request queue: " + _type_note(queue_type),
    ]
    if o.immediate:
        notes.append("immediate: RabbitMQ 3.0+ closes the connection with 540 NOT_IMPLEMENTED")
    if o.ttl0_dead_letter:
        notes.append("request queue TTL 0 + dead-letter exchange: requests no handler takes at once are dead-lettered")
    return Plan("rpc", p, Topology(tuple(exchanges), tuple(queues), tuple(bindings)), tuple(clients), tuple(notes))


def build_map_reduce(o: MapReduceOptions, scenario: Scenario, p: str) -> Plan:
    persistent, publish_mode = o.resolved_persistent, o.resolved_publish_mode
    jobs = Exchange(f"{p}jobs", o.exchange)
    queue_type = resolve(o.queue_type, o.reliable)
    results = Queue(f"{p}results", arguments=_typed(scenario, queue_type))
    shard_queues = [Queue(f"{p}shard.{i}", arguments=_typed(scenario, queue_type)) for i in range(1, o.shards + 1)]
    keys = tuple(f"shard.{i}" for i in range(1, o.shards + 1)) if o.exchange == "direct" else ()
    bindings = [Binding(jobs.name, q.name, keys[i] if keys else "") for i, q in enumerate(shard_queues)]
    clients: list[Any] = [
        SubmitterSpec(
            name=f"submitter-{i}",
            role="submitter",
            exchange=jobs.name,
            shard_keys=keys,
            shards=o.shards,
            result_queue=results.name,
            rate=o.rate,
            limit=o.limit,
            persistent=persistent,
            publish_mode=publish_mode,
            payload=o.payload,
            want_reply=o.reply,
            job_timeout=max(o.deadline * 3, 5.0),
        )
        for i in range(1, o.submitters + 1)
    ]
    clients += [
        ConsumerSpec(
            name=f"shard-{i}",
            role="shard",
            queue=q.name,
            prefetch=o.prefetch,
            processing=o.processing,
            reply=True,
            reply_persistent=persistent,
            reply_mode=publish_mode,
            reply_mandatory=publish_mode != "none",
        )
        for i, q in enumerate(shard_queues, start=1)
    ]
    reducer = ReducerSpec(
        name="reducer",
        role="reducer",
        queue=results.name,
        policy=o.policy,
        deadline=o.deadline,
        persistent=persistent,
        publish_mode=publish_mode,
    )
    clients.append(reducer)
    notes = [
        f"{o.exchange} exchange: "
        + ("every shard gets the whole job" if o.exchange == "fanout" else "the mapper sends each shard its part"),
        f"policy {o.policy}: "
        + (
            "partial results are held until every shard answered; nothing is lost"
            if o.reliable
            else f"a partial result after {o.deadline:g} s; later shard results are discarded"
        ),
        ("persistent" if persistent else "transient")
        + (f" messages, {publish_mode}" if publish_mode != "none" else " messages, no confirms: fire and forget"),
        _type_note(queue_type),
    ]
    topology = Topology((jobs,), (*shard_queues, results), tuple(bindings))
    return Plan("map-reduce", p, topology, tuple(clients), tuple(notes))


def build_workers(o: WorkersOptions, scenario: Scenario, p: str) -> Plan:
    arguments = _typed(scenario, o.resolved_queue_type)
    if o.max_length is not None:
        arguments |= {"x-max-length": o.max_length, "x-overflow": o.overflow}
    exchange = Exchange(f"{p}tasks", "direct")
    queue = Queue(f"{p}tasks", arguments=arguments)
    clients: list[Any] = [
        PublisherSpec(
            name=f"producer-{i}",
            role="producer",
            exchange=exchange.name,
            routing_keys=("task",),
            rate=o.rate,
            limit=o.limit,
            persistent=o.persistent,
            publish_mode=o.publish_mode,
            payload=o.payload,
        )
        for i in range(1, o.producers + 1)
    ]
    clients += [
        ConsumerSpec(
            name=f"worker-{i}",
            role="worker",
            queue=queue.name,
            prefetch=o.prefetch,
            auto_ack=o.ack == "auto",
            processing=o.processing,
            sink=o.sink,
        )
        for i in range(1, o.workers + 1)
    ]
    notes = [
        f"prefetch {o.prefetch}: a worker holds at most that many unacked tasks",
        f"{o.ack} ack",
        _type_note(o.resolved_queue_type),
    ]
    if o.sink:
        notes.append(f"results recorded to {o.sink}")
    topology = Topology((exchange,), (queue,), (Binding(exchange.name, queue.name, "task"),))
    return Plan("workers", p, topology, tuple(clients), tuple(notes))


def event_keys(o: PubSubOptions) -> tuple[str, ...]:
    return tuple(f"{r}.{s}.{e}" for r in o.regions for s in o.services for e in o.events)


def build_pub_sub(o: PubSubOptions, scenario: Scenario, p: str) -> Plan:
    exchange = Exchange(f"{p}events", o.exchange, durable=o.reliable)
    keys = event_keys(o)  # one tuple shared by every publisher
    clients: list[Any] = [
        PublisherSpec(
            name=f"publisher-{i}",
            role="publisher",
            exchange=exchange.name,
            routing_keys=keys,
            rate=o.rate,
            limit=o.limit,
            persistent=o.reliable,
            mandatory=o.mandatory,
            publish_mode=o.publish_mode,
            payload=o.payload,
        )
        for i in range(1, o.publishers + 1)
    ]
    queue_type = o.resolved_queue_type
    streams: list[Queue] = []
    stream_bindings: list[Binding] = []
    for name, patterns in o.subscribers.items():
        # Reliable: a durable queue that keeps events while its subscriber is away. Otherwise an
        # exclusive queue that lives and dies with the subscriber's connection.
        queue = Queue(
            f"{p}subscriber.{name}",
            durable=o.reliable,
            exclusive=not o.reliable,
            arguments=_typed(scenario, queue_type) if o.reliable else {},
        )
        bindings = tuple(Binding(exchange.name, queue.name, pattern) for pattern in patterns)
        late = name == o.late_subscriber
        if queue_type == "stream":
            # The run declares the streams, so each keeps the events from the start, a late reader's too.
            streams.append(queue)
            stream_bindings += bindings
        clients.append(
            ConsumerSpec(
                name=name,
                role="subscriber",
                queue=queue.name,
                prefetch=o.prefetch,
                processing=o.processing,
                own_queue=None if queue_type == "stream" else queue,
                own_bindings=bindings,
                offset=(o.stream_offset if late else "next") if queue_type == "stream" else None,
                joins_after=o.joins_after if late else 0.0,
            )
        )
    notes = [
        f"{o.exchange} exchange over {len(event_keys(o))} keys region.service.event",
        "reliable: durable exchange and queues, persistent events, " + o.publish_mode
        if o.reliable
        else "not reliable: a subscriber's queue goes away with it, and so do its events",
    ]
    if o.reliable:
        notes.append(_type_note(queue_type))
    if o.late_subscriber is not None:
        start = o.offset if o.offset in STREAM_OFFSETS else f"{o.offset} back"
        notes.append(f"{o.late_subscriber} joins after {o.joins_after:g} s and reads its stream from {start}")
    topology = Topology((exchange,), tuple(streams), tuple(stream_bindings))
    return Plan("pub-sub", p, topology, tuple(clients), tuple(notes))


def build_custom(o: CustomOptions, scenario: Scenario, p: str) -> Plan:
    def name(local: str) -> str:
        return local if local == "" or local.startswith("amq.") else f"{p}{local}"

    exchanges = tuple(
        Exchange(
            name(e.name),
            e.type,
            e.durable,
            e.auto_delete,
            e.internal,
            {"alternate-exchange": name(e.alternate)} if e.alternate else {},
        )
        for e in o.exchanges
    )
    queues = []
    for q in o.queues:
        arguments: dict[str, Any] = dict(q.arguments)
        if "x-dead-letter-exchange" in arguments:
            arguments["x-dead-letter-exchange"] = name(str(arguments["x-dead-letter-exchange"]))
        arguments.setdefault("x-expires", int(scenario.safety_expires * 1000))
        queues.append(Queue(name(q.name), arguments=arguments))
    bindings = tuple(
        Binding(name(b.source), name(b.destination), b.routing_key, b.arguments, b.to == "exchange") for b in o.bindings
    )
    clients: list[Any] = [
        PublisherSpec(
            name=c.name,
            role="publisher",
            exchange=name(c.exchange),
            routing_keys=tuple(c.routing_keys),
            rate=c.rate,
            limit=c.limit,
            persistent=c.persistent,
            mandatory=c.mandatory,
            publish_mode=c.publish_mode,
            payload=c.payload,
            headers=tuple(c.headers.items()),
        )
        for c in o.publishers
    ]
    clients += [
        ConsumerSpec(
            name=c.name,
            role="consumer",
            queue=name(c.queue),
            prefetch=c.prefetch,
            auto_ack=c.ack == "auto",
            processing=c.processing,
            reply=c.reply,
        )
        for c in o.consumers
    ]
    return Plan("custom", p, Topology(exchanges, tuple(queues), bindings), tuple(clients))


BUILDERS: dict[str, Callable[[Any, Scenario, str], Plan]] = {
    "rpc": build_rpc,
    "map-reduce": build_map_reduce,
    "workers": build_workers,
    "pub-sub": build_pub_sub,
    "custom": build_custom,
}
