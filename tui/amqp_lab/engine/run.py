"""One run of a scenario: declare, start the clients, apply the schedule and live controls, measure, clean up."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from amqp_lab.amqp.routing import binding_matches
from amqp_lab.broker.connection import connect_first
from amqp_lab.broker.errors import AmqpError
from amqp_lab.config import Settings
from amqp_lab.engine.clients import (
    RECONNECT,
    Client,
    Consumer,
    Producer,
    Publisher,
    Reducer,
    Requester,
    State,
    make_client,
)
from amqp_lab.engine.context import RunContext
from amqp_lab.engine.fleet import AgentsMissing, Fleet
from amqp_lab.engine.ledger import Ledger, lab_id
from amqp_lab.engine.metrics import RateMeter
from amqp_lab.engine.placement import Placement
from amqp_lab.engine.publishing import LINK_LOST, link_broke
from amqp_lab.engine.snapshot import QueueDepth, RunSnapshot, SubscriberCheck
from amqp_lab.masking import mask_text
from amqp_lab.scenario.figures import Count
from amqp_lab.scenario.model import Scenario, ScheduledAction
from amqp_lab.scenario.patterns import build, run_marker, run_prefix
from amqp_lab.scenario.plan import ConsumerSpec

SNAPSHOT_INTERVAL = 0.1
REQUEUE_GRACE = 2.0  # seconds the leftover count waits for owed messages to come back to their queue
STREAM_QUIET = 0.5  # seconds without a read from a stream before the run takes its readers to have caught up
SAMPLE_INTERVAL = 1.0
EVENTS_IN_SNAPSHOT = 100
CLEANUP_TIMEOUT = 30.0  # seconds for counting leftovers and deleting, on top of the broker answer timeout
# How a cleanup fails when the broker is gone or goes while it runs: aio-pika raises RuntimeError on a closed
# connection, aiormq cancels what waits on a connection it found dead.
CLEANUP_FAILURES = (*LINK_LOST, AmqpError, aiormq.exceptions.AMQPError, RuntimeError, TimeoutError)
LEASE = "lease"  # an exclusive queue that exists exactly as long as the run: `cleanup` spares live runs


def pending_jobs(counters: dict[str, int]) -> int:
    """Map-reduce jobs submitted and neither combined nor given up on (partial)."""
    done = counters.get(Count.JOBS_COMPLETE, 0) + counters.get(Count.JOBS_PARTIAL, 0)
    return counters.get(Count.JOBS_SUBMITTED, 0) - done


SLOW_FACTOR = 10.0  # what slow does without a factor

# What each action does to one client: the kind of client it applies to, the act, and what the event log says
# (None: the client logs it itself).
CLIENT_ACTIONS: dict[
    str, tuple[type[Client], Callable[[Any, float | None], Awaitable[None] | None], tuple[str, str] | None]
] = {
    "crash": (Client, lambda c, _: c.crash(), None),
    "stop": (Client, lambda c, _: c.stop(), ("stop", "stopped")),
    "restart": (Client, lambda c, _: c.restart(), None),
    "pause": (Producer, lambda c, _: c.pause(), ("fault", "paused")),
    "resume": (Producer, lambda c, _: c.resume(), ("fault", "resumed")),
    "hang": (Consumer, lambda c, _: c.hang(), ("fault", "hang")),
    "slow": (Consumer, lambda c, v: c.slow(v or SLOW_FACTOR), ("fault", "slow x{value:g}")),
    "reject": (Consumer, lambda c, _: c.misbehave("reject"), ("fault", "reject")),
    "nack": (Consumer, lambda c, _: c.misbehave("nack"), ("fault", "nack")),
    "heal": (Consumer, lambda c, _: c.heal(), ("fault", "heal")),
}


class RunError(Exception):
    """The run could not start or went wrong in a way the user must fix; the message says how."""


class Run:
    """Drive with `await run.execute()`, or `start()` / controls / `stop()` from a UI."""

    def __init__(self, scenario: Scenario, settings: Settings, run_id: str | None = None) -> None:
        if settings.read_only:
            raise RunError("read-only mode: a scenario run declares queues and publishes; drop --read-only to run it")
        self.scenario = scenario
        self.settings = settings
        self.run_id = run_id or secrets.token_hex(3)
        self.prefix = run_prefix(self.run_id)
        self.plan = build(scenario, self.prefix)
        self.ctx = RunContext(
            settings,
            Ledger(self.plan.topology, gathered=settings.agents > 0),
            random.Random(scenario.seed),
            self.run_id,
        )
        self._fleet: Fleet | None = None  # the agents running this run's clients, if settings.agents
        self._placement = Placement(settings, self.prefix, self.ctx, frozenset([f"{self.prefix}{LEASE}"]))
        self.clients: dict[str, Client] = {}
        self.state = "starting"
        self._listeners: list[Callable[[RunSnapshot], None]] = []
        self._admin: AbstractConnection | None = None
        self._monitor: AbstractChannel | None = None
        self._depths: dict[str, QueueDepth] = {}
        self._depths_sampled_at: float | None = None  # elapsed seconds at the last sample of the ready counts
        self._tasks: list[asyncio.Task[Any]] = []
        self._late_joins: list[asyncio.Task[None]] = []
        self._meters = {name: RateMeter() for name in ("published", "delivered", "acked")}
        self._queue_meters: dict[str, tuple[RateMeter, RateMeter]] = {}
        self._started_at = 0.0
        self._declared = False  # once anything may exist on the broker, stop() must clean up
        self._subscribers = self._subscriber_patterns()
        self._expected: dict[str, int] = dict.fromkeys(self._subscribers, 0)
        self._missed: dict[str, int] = dict.fromkeys(self._subscribers, 0)
        if self._subscribers:
            self.ctx.on_publish = self._check_delivery
        self.last: RunSnapshot | None = None
        self._loop_lag = 0.0
        self._down_since: float | None = None  # the run's connection is lost since then
        self._outage_reason = ""
        self.leftovers: list[str] = []  # what cleanup could not remove (checked after deleting)
        self.cleanup_error: str | None = None  # why cleanup could not run at all (the broker out of reach)

    # Lifecycle

    def add_listener(self, listener: Callable[[RunSnapshot], None]) -> None:
        self._listeners.append(listener)

    async def execute(self, duration: float | None = None, stop: asyncio.Event | None = None) -> RunSnapshot:
        """Start, run for the scenario's duration (or until every producer reached its limit, or `stop`), clean up."""
        try:
            await self.start()
            await self._wait(self.scenario.duration if duration is None else duration, stop)
        finally:
            await self.stop()
        assert self.last is not None
        return self.last

    async def _wait(self, duration: float, stop: asyncio.Event | None) -> None:
        stop = stop or asyncio.Event()
        producers = [c for c in self.clients.values() if isinstance(c, Producer)]
        waits = [asyncio.ensure_future(stop.wait())]
        if producers and all(c.spec.limit is not None for c in producers):
            waits.append(asyncio.ensure_future(asyncio.gather(*(c.done.wait() for c in producers))))
        try:
            await asyncio.wait(waits, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def start(self) -> None:
        self._started_at = time.monotonic()
        self.ctx.started = self._started_at
        self._declared = True
        await self._connect()
        if self.settings.agents:
            await self._hand_to_agents()
        else:
            await self._start_clients()
        self.state = "running"
        self.ctx.event("info", "run", f"started {self.scenario.title} as run {self.run_id}")
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._snapshots()), loop.create_task(self._sample())]
        self._tasks.append(loop.create_task(self._placement.run()))
        self._tasks += [loop.create_task(self._scheduled(action)) for action in self.scenario.schedule]

    async def _hand_to_agents(self) -> None:
        self._fleet = Fleet(self.settings, self.ctx, self.run_id, self.scenario)
        try:
            await self._fleet.recruit(self.settings.agents, self.plan.clients)
        except AgentsMissing as exc:
            raise RunError(str(exc)) from None

    async def _start_clients(self) -> None:
        self.clients = {spec.name: make_client(spec, self.ctx) for spec in self.plan.clients}
        late = [c for c in self.clients.values() if isinstance(c, Consumer) and c.spec.joins_after > 0]
        for client in late:
            client.state = State.WAITING
        # Consumers first, so nothing published finds its queue without a reader.
        producers = [c for c in self.clients.values() if isinstance(c, Producer)]
        first = [c for c in self.clients.values() if not isinstance(c, Producer) and c not in late]
        await asyncio.gather(*(c.start() for c in first))
        await asyncio.gather(*(c.start() for c in producers))
        loop = asyncio.get_running_loop()
        self._late_joins = [loop.create_task(self._join_late(client)) for client in late]

    async def _join_late(self, client: Consumer) -> None:
        """A subscriber that joins a while into the run, reading its stream from its offset."""
        await asyncio.sleep(client.spec.joins_after)
        await self.ctx.broker_up.wait()
        try:
            await client.start()
        except (AmqpError, aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            client.state = State.FAILED
            self.ctx.event("error", client.name, f"could not join: {exc}")
            return
        offset = client.spec.offset
        start = f"{offset:g} s back" if isinstance(offset, float) else offset
        self.ctx.event("info", client.name, f"joined {client.spec.joins_after:g} s into the run, reading from {start}")

    async def _connect(self) -> None:
        """The run's own connection: the lease, then the topology (again, after an outage: declaring is idempotent,
        and whatever the broker lost in a restart, non-durable queues and exchanges, comes back)."""
        self._admin = admin = await connect_first(self.settings, f"run {self.run_id}")
        try:
            self._monitor = await self._admin_channel()
            await self._monitor.declare_queue(
                f"{self.prefix}{LEASE}", exclusive=True, auto_delete=True, arguments=run_marker(self.prefix)
            )
            await self._declare()
        except BaseException:
            # A half-made connection would keep its lease (exclusive) and lock the next attempt out of it.
            with contextlib.suppress(Exception):
                await admin.close()
            raise
        admin.close_callbacks.add(self._connection_closed)

    def _connection_closed(self, sender: object, exc: BaseException | None = None) -> None:
        if sender is not self._admin or self.state in ("cleaning", "finished") or self._down_since is not None:
            return
        self._down_since = time.monotonic()
        self.ctx.broker_up.clear()
        self.ctx.consumers_up.clear()
        reason = mask_text(str(exc), self.settings.secrets()) if exc else "closed by the broker"
        self.ctx.event("disconnect", "run", f"broker connection lost ({reason}); reconnecting")
        self._tasks.append(asyncio.get_running_loop().create_task(self._reconnect()))

    async def _reconnect(self) -> None:
        """Until the broker answers again; then clients reconnect (they wait for `broker_up`)."""
        attempt = 0
        while True:
            attempt += 1
            await asyncio.sleep(RECONNECT.delay(attempt))
            try:
                await self._connect()
                break
            except (AmqpError, RunError, aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
                self._outage_reason = f"attempt {attempt}: {exc}"
        assert self._down_since is not None
        outage = time.monotonic() - self._down_since
        self._down_since, self._outage_reason = None, ""
        self.ctx.counters[Count.BROKER_OUTAGES] += 1
        self.ctx.event("restart", "run", f"broker back after {outage:.1f} s: topology declared again")
        self.ctx.broker_up.set()
        self.ctx.consumers_ready()  # producers go on once no consumer is reconnecting any more

    async def _declare(self) -> None:
        assert self._monitor is not None
        channel = self._monitor
        topology = self.plan.topology
        try:
            for e in topology.exchanges:
                await channel.declare_exchange(
                    e.name,
                    e.type,
                    durable=e.durable,
                    auto_delete=e.auto_delete,
                    internal=e.internal,
                    arguments=dict(e.arguments) or None,
                )
            for q in topology.queues:
                await channel.declare_queue(
                    q.name,
                    durable=q.durable,
                    exclusive=q.exclusive,
                    auto_delete=q.auto_delete,
                    arguments=dict(q.arguments) or None,
                )
            for b in topology.bindings:
                source = await channel.get_exchange(b.source, ensure=False)
                if b.to_exchange:
                    target = await channel.get_exchange(b.destination, ensure=False)
                    await target.bind(source, b.routing_key, arguments=dict(b.arguments) or None)
                else:
                    queue = await channel.get_queue(b.destination, ensure=False)
                    await queue.bind(source, b.routing_key, arguments=dict(b.arguments) or None)
        except aiormq.exceptions.AMQPError as exc:
            raise RunError(f"the broker refused the topology: {exc}") from None

    async def stop(self) -> None:
        """Producers stop, consumers finish what is queued (up to `drain`), the rest is counted, all is deleted."""
        if self.state in ("cleaning", "finished"):
            return
        self.state = "draining"
        for client in self.clients.values():
            if isinstance(client, Producer):
                client.pause()
        if self._fleet is not None:
            await self._fleet.pause()
        await self._settle_producers()
        await self._drain(self.scenario.drain)
        if self._fleet is not None:
            await self._fleet.finish()  # their last reports are in: the ledger has every agent's part
        self.state = "cleaning"
        for task in [*self._tasks, *self._late_joins]:
            if not task.done() and task is not asyncio.current_task():
                task.cancel()
        await asyncio.gather(*(client.close() for client in self.clients.values()), return_exceptions=True)
        if self._fleet is not None:
            await self._fleet.close()
        checked = True
        if self._declared:
            try:
                await self._clean_up()
            except (*CLEANUP_FAILURES, asyncio.CancelledError) as exc:
                if isinstance(exc, asyncio.CancelledError) and not link_broke(exc):
                    raise
                checked = False
                self._cleanup_failed(exc)
        self.ctx.ledger.finish(checked)
        self.ctx.close_sinks()
        for latency in self.ctx.latency.values():
            latency.roll()
        self.state = "finished"
        self._publish_snapshot()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.close()

    async def _clean_up(self) -> None:
        """Tell what is still queued from what is lost, then delete everything the run declared."""
        if self._admin is None or self._admin.is_closed:
            self._admin = await connect_first(self.settings, f"run {self.run_id}")  # not watched: the run is ending
        async with asyncio.timeout(CLEANUP_TIMEOUT + self.settings.timeout):
            await self._count_leftovers()
            await self._delete()

    def _cleanup_failed(self, exc: BaseException) -> None:
        """The broker is out of reach at the end: say what may still be there, and how to remove it later."""
        reason = mask_text(str(exc) or type(exc).__name__, self.settings.secrets())
        self.cleanup_error = f"the broker could not be reached to clean up ({reason})"
        shared = sorted(self._shared_queues())
        self.leftovers = [f"queue {q}" for q in shared] + [f"exchange {e.name}" for e in self.plan.topology.exchanges]
        self.ctx.event(
            "error",
            "run",
            f"{self.cleanup_error}: {len(self.leftovers)} object(s) may be left; `amqp-lab cleanup` removes them "
            "once the broker is back. Messages still in them were not counted: the ledger calls them unchecked",
        )

    async def _settle_producers(self) -> None:
        """Let publishes already on the wire get their confirms, so the ledger knows their fate."""
        publishers = [c for c in self.clients.values() if isinstance(c, Publisher) and c.active]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await asyncio.gather(*(publisher.settle() for publisher in publishers))

    async def _drain(self, limit: float) -> None:
        """Until nothing is owed (and stream readers have read the tail: nothing is owed there, so their reads
        must have stopped for a moment), or `limit` seconds."""
        deadline = time.monotonic() + limit
        ledger = self.ctx.ledger
        read, read_at = -1, 0.0
        while time.monotonic() < deadline:
            counts = ledger.counts()
            if counts.read != read:
                read, read_at = counts.read, time.monotonic()
            # Owed answers too: replies to requests, and combined results of map-reduce jobs (the pipeline from
            # shards to reducer to submitter lags the ledger's copies on a loaded machine).
            waiting = any(isinstance(c, Requester) and c.unacked for c in self.clients.values())
            waiting = waiting or pending_jobs(self._counters()) > 0
            streams_read = not ledger.streams or time.monotonic() - read_at >= STREAM_QUIET
            if counts.outstanding == 0 and not waiting and streams_read:
                return
            await asyncio.sleep(0.05)

    async def _admin_channel(self) -> AbstractChannel:
        """A channel of the run's own connection. It never publishes, so not in confirm mode: the broker's channel
        list shows which of a run's channels confirm, and this one would have said it did."""
        assert self._admin is not None
        return await self._admin.channel(publisher_confirms=False)

    async def _count_leftovers(self) -> None:
        """Read what is still in the lab's queues, so the ledger tells "still queued" from "lost"."""
        assert self._admin is not None
        channel = await self._admin_channel()
        ledger = self.ctx.ledger
        # Nothing owed in a stream (it owes nothing to anyone) nor in an empty-handed queue: nothing to tell apart.
        owed = [q for q in self._shared_queues() if q not in ledger.streams and ledger.outstanding_in(q)]
        # What such a queue holds may be dead-lettered meanwhile (requeued at teardown into a TTL 0 queue): read
        # where it goes too, after the queue itself.
        followed = [d for q in owed for d in sorted(ledger.dead_letter_queues(q)) if d not in owed]
        for queue in [*owed, *dict.fromkeys(followed)]:
            try:
                declared = await channel.declare_queue(queue, passive=True)
            except aiormq.exceptions.AMQPError:
                channel = await self._admin_channel()
                continue
            await channel.set_qos(prefetch_count=1000)
            quiet = asyncio.Event()

            async def found(message: AbstractIncomingMessage, name: str = queue, event: asyncio.Event = quiet) -> None:
                msg_id = lab_id(message.headers)
                if msg_id is not None:
                    deaths = message.headers.get("x-death")
                    ledger.drained(msg_id, name, deaths[0] if isinstance(deaths, list) and deaths else None)
                event.set()

            tag = await declared.consume(found, no_ack=True)
            # A quorum queue takes back what closed consumers held through its log, a moment later.
            deadline = time.monotonic() + REQUEUE_GRACE
            while True:
                quiet.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(quiet.wait(), 0.3)
                if not quiet.is_set() and (not ledger.outstanding_in(queue) or time.monotonic() >= deadline):
                    break
            await declared.cancel(tag)
        with contextlib.suppress(Exception):
            await channel.close()

    def _shared_queues(self) -> list[str]:
        return [q.name for q in self.ctx.ledger.topology.queues if not q.exclusive and q.name.startswith(self.prefix)]

    async def _delete(self) -> None:
        assert self._admin is not None
        channel = await self._admin_channel()
        names = set(self._shared_queues()) | {q.name for q in self.plan.topology.queues}
        for queue in sorted(names):
            with contextlib.suppress(aiormq.exceptions.AMQPError):
                await channel.queue_delete(queue)
        for exchange in self.plan.topology.exchanges:
            with contextlib.suppress(aiormq.exceptions.AMQPError):
                await channel.exchange_delete(exchange.name)
        with contextlib.suppress(Exception):
            await channel.close()
        self.leftovers = [f"queue {q}" for q in sorted(names) if await self._exists("queue", q)]
        self.leftovers += [
            f"exchange {e.name}" for e in self.plan.topology.exchanges if await self._exists("exchange", e.name)
        ]

    async def _exists(self, kind: str, name: str) -> bool:
        """A passive declare on a channel of its own: a 404 closes the channel."""
        assert self._admin is not None
        channel = await self._admin_channel()
        try:
            if kind == "queue":
                await channel.declare_queue(name, passive=True)
            else:
                await channel.declare_exchange(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        with contextlib.suppress(Exception):
            await channel.close()
        return True

    # Live controls, also used by the schedule

    def client(self, name: str) -> Client:
        found = self.clients.get(name)
        remote = self._fleet.holder(name) if self._fleet else None
        if found is None and remote is not None:
            raise RunError(f"{name} runs on agent {remote}: controls reach the clients on this machine only")
        if found is None:
            raise RunError(f"no client named {name!r}; clients: {', '.join(self.clients)}")
        return found

    def _targets(self, target: str) -> list[Client]:
        """A client by name, or every client of a role."""
        if target in self.clients:
            return [self.clients[target]]
        found = [c for c in self.clients.values() if c.role == target]
        if not found:
            raise RunError(f"no client or role {target!r}; roles: {', '.join(self.plan.roles)}")
        return found

    async def add(self, role: str) -> Client:
        n = 1 + sum(1 for c in self.clients.values() if c.role == role)
        while f"{role}-{n}" in self.clients:
            n += 1
        spec = self.plan.clone(role, f"{role}-{n}")
        if spec is None:
            raise RunError(f"no role {role!r} to add to; roles: {', '.join(self.plan.roles)}")
        client = self.clients[spec.name] = make_client(spec, self.ctx)
        await client.start()
        self.ctx.event("info", client.name, f"added a {role}")
        return client

    async def remove(self, role: str) -> Client:
        candidates = [c for c in self.clients.values() if c.role == role and c.active]
        if not candidates:
            raise RunError(f"no running {role} to remove")
        client = candidates[-1]
        await client.close()
        del self.clients[client.name]
        self.ctx.event("stop", client.name, f"removed a {role}")
        return client

    def set_rate(self, target: str, rate: float | None) -> None:
        for client in self._targets(target):
            if isinstance(client, Producer):
                client.set_rate(rate)
        shown = "max" if rate is None else f"{rate:g}/s"
        self.ctx.event("fault", target, f"rate set to {shown}")

    def pause_producers(self) -> None:
        for client in self.clients.values():
            if isinstance(client, Producer):
                client.pause()
        self.ctx.event("info", "run", "producers paused")

    def resume_producers(self) -> None:
        for client in self.clients.values():
            if isinstance(client, Producer):
                client.resume()
        self.ctx.event("info", "run", "producers resumed")

    async def inject(self, name: str, action: str, value: float | None = None) -> None:
        """crash, hang, slow (value = factor), reject, nack, heal, stop, restart, pause, resume, rate, add, remove.
        Only while the run is running: once it drains, its clients are being stopped, and the log says so."""
        if self.state != "running":
            self.ctx.event("refused", name, f"{action}: the run is {self.state}, its clients are being stopped")
            return
        if action == "add":
            await self.add(name)
        elif action == "remove":
            await self.remove(name)
        elif action == "rate":
            self.set_rate(name, value)
        else:
            await self._act_on(self.client(name), action, value)

    async def _act_on(self, client: Client, action: str, value: float | None) -> None:
        applies_to, act, logged = CLIENT_ACTIONS[action]
        if not isinstance(client, applies_to):
            raise RunError(f"{action} applies to {applies_to.__name__.lower()}s; {client.name} is a {client.role}")
        done = act(client, value)
        if done is not None:
            await done
        if logged is not None:
            kind, text = logged
            self.ctx.event(kind, client.name, text.format(value=value or SLOW_FACTOR))

    async def _scheduled(self, action: ScheduledAction) -> None:
        await asyncio.sleep(max(0.0, self._started_at + action.at - time.monotonic()))
        try:
            await self.inject(action.client, action.action, action.value)
            if action.lasting is None:
                return
            await asyncio.sleep(action.lasting)
            undo = {"crash": "restart", "stop": "restart", "pause": "resume"}.get(action.action, "heal")
            if action.action in ("add", "remove", "rate"):
                return
            await self.inject(action.client, undo)
        except (RunError, aiormq.exceptions.AMQPError, ConnectionError) as exc:
            self.ctx.event("error", action.client, f"scheduled {action.action} failed: {exc}")

    # Measurement

    def _subscriber_patterns(self) -> dict[str, ConsumerSpec]:
        return {c.name: c for c in self.plan.clients if isinstance(c, ConsumerSpec) and c.role == "subscriber"}

    def _check_delivery(self, exchange: str, routing_key: str) -> None:
        found = self.plan.topology.exchange(exchange)
        if found is None:
            return
        topology = self.ctx.ledger.topology
        for name, spec in self._subscribers.items():
            bindings = [b for b in spec.own_bindings if b.source == exchange]
            if any(binding_matches(found.type, b, routing_key, {}) for b in bindings):
                self._expected[name] += 1
                if topology.queue(spec.queue) is None:
                    self._missed[name] += 1

    async def _sample(self) -> None:
        while True:
            for latency in self.ctx.latency.values():
                latency.roll()
            if self._down_since is None:
                try:
                    await self._sample_depths()
                except (*LINK_LOST, RuntimeError, aiormq.exceptions.AMQPError, asyncio.CancelledError) as exc:
                    # The connection went away mid-sample (the reconnect reports it): the next sample catches up.
                    if isinstance(exc, asyncio.CancelledError) and not link_broke(exc):
                        raise
            await asyncio.sleep(SAMPLE_INTERVAL)

    async def _sample_depths(self) -> None:
        if self._admin is None or self._admin.is_closed:
            return
        if self._monitor is None or self._monitor.is_closed:
            self._monitor = await self._admin_channel()
        for name in self._shared_queues():
            try:
                declared = await self._monitor.declare_queue(name, passive=True)
            except (aiormq.exceptions.AMQPError, aio_pika.exceptions.ChannelInvalidStateError):
                self._monitor = await self._admin_channel()
                continue
            result = declared.declaration_result
            self._depths[name] = QueueDepth(name, result.message_count or 0, 0, result.consumer_count or 0)
            self._depths_sampled_at = time.monotonic() - self._started_at if self._started_at else 0.0

    async def _snapshots(self) -> None:
        lags: deque[float] = deque(maxlen=round(1 / SNAPSHOT_INTERVAL))
        while True:
            self._loop_lag = max(lags, default=0.0)
            self._publish_snapshot()
            before = time.monotonic()
            await asyncio.sleep(SNAPSHOT_INTERVAL)
            # How late the timer fired: the clients' own loop is saturated when this grows.
            lags.append(time.monotonic() - before - SNAPSHOT_INTERVAL)

    def _publish_snapshot(self) -> None:
        self.last = snapshot = self.snapshot()
        for listener in list(self._listeners):
            listener(snapshot)

    def _queue_depths(self, now: float) -> tuple[QueueDepth, ...]:
        """The last sampled ready counts, with what the lab's clients hold unacked and the inbound and acked rates,
        which move ten times a second."""
        ledger = self.ctx.ledger
        depths = []
        for name, depth in self._depths.items():
            meters = self._queue_meters.setdefault(name, (RateMeter(), RateMeter()))
            depths.append(
                replace(
                    depth,
                    unacked=self._held_from(name),
                    in_rate=meters[0].sample(ledger.routed_to.get(name, 0), now),
                    out_rate=meters[1].sample(ledger.acked_in.get(name, 0), now),
                    place=self._placement.queues.get(name),
                )
            )
        return tuple(depths)

    def _held_from(self, queue: str) -> int:
        """Unacked, as the lab's clients that read the queue hold them: consumers, and the reducer's partial results."""
        readers = (c for c in self.clients.values() if isinstance(c, Consumer | Reducer) and c.spec.queue == queue)
        return sum(c.unacked for c in readers)

    def _counters(self) -> dict[str, int]:
        """The clients' counters, the agents' included."""
        return dict(self.ctx.counters + self._fleet.counters()) if self._fleet else dict(self.ctx.counters)

    def snapshot(self) -> RunSnapshot:
        ledger = self.ctx.ledger.counts()
        counters = self._counters()
        if "jobs_submitted" in counters:
            counters[Count.PENDING_JOBS] = pending_jobs(counters)
        if self._subscribers:
            counters[Count.MISSED] = sum(self._missed.values())
        now = time.monotonic()
        rates = {name: meter.sample(getattr(ledger, name), now) for name, meter in self._meters.items()}
        acked_in = self.ctx.ledger.acked_in
        return RunSnapshot(
            run_id=self.run_id,
            title=self.scenario.title,
            pattern=self.scenario.pattern,
            state=self.state,
            elapsed=now - self._started_at if self._started_at else 0.0,
            duration=self.scenario.duration,
            ledger=ledger,
            counters=counters,
            rates=rates,
            latency={name: lat.recent for name, lat in self.ctx.latency.items()},
            latency_total={name: lat.total for name, lat in self.ctx.latency.items()},
            clients=(
                *(client.stats() for client in self.clients.values()),
                *(self._fleet.client_stats() if self._fleet else ()),
            ),
            queues=self._queue_depths(now),
            events=self.ctx.kept_events() if self.state == "finished" else tuple(self.ctx.events)[-EVENTS_IN_SNAPSHOT:],
            event_counts=dict(self.ctx.event_counts),
            subscribers=tuple(
                SubscriberCheck(
                    name,
                    tuple(b.routing_key for b in spec.own_bindings),
                    self._expected[name],
                    acked_in.get(spec.queue, 0),
                    self._missed[name],
                    self.ctx.ledger.discarded_in.get(spec.queue, 0),
                )
                for name, spec in self._subscribers.items()
            ),
            notes=self.plan.notes,
            loop_lag=self._loop_lag,
            depths_sampled_at=self._depths_sampled_at,
            outage=None if self._down_since is None else now - self._down_since,
            outage_reason=self._outage_reason,
            nodes=self._placement.nodes,
            agents=self._fleet.summary() if self._fleet else (),
        )
