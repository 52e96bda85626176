"""One run of a scenario: declare, start the clients, apply the schedule and live controls, measure, clean up."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection

from amqp_lab.broker.connection import connect_first
from amqp_lab.broker.errors import AmqpError
from amqp_lab.config import Settings
from amqp_lab.engine.broadcast import Broadcast
from amqp_lab.engine.clients.base import RECONNECT, State
from amqp_lab.engine.clients.consumer import Consumer
from amqp_lab.engine.clients.producers import Producer, Publisher
from amqp_lab.engine.clients.requesters import Requester
from amqp_lab.engine.context import RunContext
from amqp_lab.engine.errors import RunError
from amqp_lab.engine.events import EventKind
from amqp_lab.engine.fleet import AgentsMissing, Fleet
from amqp_lab.engine.ledger import Ledger
from amqp_lab.engine.local_agents import LocalAgents
from amqp_lab.engine.metrics import RateMeter
from amqp_lab.engine.objects import count_leftovers, declare, delete
from amqp_lab.engine.placement import Placement
from amqp_lab.engine.publishing import LINK_LOST, link_broke
from amqp_lab.engine.roster import Roster
from amqp_lab.engine.snapshot import QueueDepth, RunSnapshot
from amqp_lab.engine.subscribers import DeliveryCheck
from amqp_lab.masking import mask_text
from amqp_lab.scenario.figures import Count
from amqp_lab.scenario.model import Scenario, ScheduledAction
from amqp_lab.scenario.patterns import build, run_marker, run_prefix

SNAPSHOT_INTERVAL = 0.1
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
            Ledger(self.plan.topology, gathered=settings.handed_out > 0),
            random.Random(scenario.seed),
            self.run_id,
        )
        self._placement = Placement(settings, self.prefix, self.ctx, frozenset([f"{self.prefix}{LEASE}"]))
        self.roster = Roster(self.plan, self.ctx)
        self._broadcast = Broadcast(settings, scenario, self.run_id, self.ctx.event)
        self.state = "starting"
        self._listeners: list[Callable[[RunSnapshot], None]] = [self._broadcast.take]
        self._admin: AbstractConnection | None = None
        self._monitor: AbstractChannel | None = None
        self._depths: dict[str, QueueDepth] = {}
        self._depths_sampled_at: float | None = None  # elapsed seconds at the last sample of the ready counts
        self._tasks: list[asyncio.Task[Any]] = []
        self._local_agents: LocalAgents | None = None  # --processes: this run's agent processes
        self._late_joins: list[asyncio.Task[None]] = []
        self._meters = {name: RateMeter() for name in ("published", "delivered", "acked")}
        self._queue_meters: dict[str, tuple[RateMeter, RateMeter]] = {}
        self._started_at = 0.0
        self._declared = False  # once anything may exist on the broker, stop() must clean up
        self._deliveries = DeliveryCheck(self.plan, self.ctx.ledger)
        if self._deliveries:
            self.ctx.on_publish = self._deliveries.published
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
        producers = self.roster.of_kind(Producer)
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
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
        if self.settings.handed_out:
            await self._hand_to_agents()
        else:
            await self._start_clients()
        self.state = "running"
        self.ctx.event(EventKind.INFO, "run", f"started {self.scenario.title} as run {self.run_id}")
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._snapshots()), loop.create_task(self._sample())]
        self._broadcast.start()
        self._tasks.append(loop.create_task(self._placement.run()))
        self._tasks += [loop.create_task(self._scheduled(action)) for action in self.scenario.schedule]

    async def _hand_to_agents(self) -> None:
        self.roster.fleet = fleet = Fleet(self.settings, self.ctx, self.run_id, self.scenario)
        named: tuple[str, ...] = ()
        ended: list[asyncio.Future[Any]] = []  # with --processes: once one of the run's processes ends
        if self.settings.processes:
            self._local_agents = local = LocalAgents(self.settings, self.run_id, self.settings.processes)
            await local.start()
            named = local.names
            ended.append(asyncio.ensure_future(local.first_ended()))
        recruiting: asyncio.Future[Any] = asyncio.ensure_future(
            fleet.recruit(self.settings.handed_out, self.plan.clients, named)
        )
        try:
            await asyncio.wait([recruiting, *ended], return_when=asyncio.FIRST_COMPLETED)
            if ended and ended[0].done():  # a process that ends before the run does could not serve it
                raise RunError(f"this run's processes could not serve it: {ended[0].result()}")
            try:
                recruiting.result()
            except AgentsMissing as exc:
                raise RunError(str(exc)) from None
        finally:
            for waiting in (recruiting, *ended):
                waiting.cancel()

    async def _start_clients(self) -> None:
        self.roster.enlist()
        late = [c for c in self.roster.of_kind(Consumer) if c.spec.joins_after > 0]
        for client in late:
            client.state = State.WAITING
        # Consumers first, so nothing published finds its queue without a reader.
        producers = self.roster.of_kind(Producer)
        first = [c for c in self.roster.clients.values() if not isinstance(c, Producer) and c not in late]
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
            self.ctx.event(EventKind.ERROR, client.name, f"could not join: {exc}")
            return
        offset = client.spec.offset
        start = f"{offset:g} s back" if isinstance(offset, float) else offset
        self.ctx.event(
            EventKind.INFO, client.name, f"joined {client.spec.joins_after:g} s into the run, reading from {start}"
        )

    async def _connect(self) -> None:
        """The run's own connection: the lease, then the topology (again, after an outage: declaring is idempotent,
        and whatever the broker lost in a restart, non-durable queues and exchanges, comes back)."""
        self._admin = admin = await connect_first(self.settings, f"run {self.run_id}")
        try:
            self._monitor = await self._admin_channel()
            await self._monitor.declare_queue(
                f"{self.prefix}{LEASE}", exclusive=True, auto_delete=True, arguments=run_marker(self.prefix)
            )
            await declare(self._monitor, self.plan.topology)
        except BaseException:
            # A half-made connection would keep its lease (exclusive) and lock the next attempt out of it.
            with contextlib.suppress(Exception):
                await admin.close()
            raise
        admin.close_callbacks.add(self._connection_closed)
        if admin.is_closed:  # closed before the callback was in place: it would never be told
            raise RunError("the broker closed the run's connection as it declared the topology: try again")

    def _connection_closed(self, sender: object, exc: BaseException | None = None) -> None:
        if sender is not self._admin or self.state in ("cleaning", "finished") or self._down_since is not None:
            return
        self._down_since = time.monotonic()
        self.ctx.broker_up.clear()
        self.ctx.consumers_up.clear()
        reason = mask_text(str(exc), self.settings.secrets()) if exc else "closed by the broker"
        self.ctx.event(EventKind.DISCONNECT, "run", f"broker connection lost ({reason}); reconnecting")
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
        self.ctx.event(EventKind.RESTART, "run", f"broker back after {outage:.1f} s: topology declared again")
        self.ctx.broker_up.set()
        self.ctx.consumers_ready()  # producers go on once no consumer is reconnecting any more

    async def stop(self) -> None:
        """Producers stop, consumers finish what is queued (up to `drain`), the rest is counted, all is deleted."""
        if self.state in ("cleaning", "finished"):
            return
        self.state = "draining"
        for producer in self.roster.of_kind(Producer):
            producer.finish()
        fleet = self.roster.fleet
        if fleet is not None:
            await fleet.pause()
        await self._settle_producers()
        await self._drain(self.scenario.drain)
        if fleet is not None:
            await fleet.finish()  # their last reports are in: the ledger has every agent's part
        self.state = "cleaning"
        for task in [*self._tasks, *self._late_joins]:
            if not task.done() and task is not asyncio.current_task():
                task.cancel()
        await asyncio.gather(*(client.close() for client in self.roster.clients.values()), return_exceptions=True)
        if fleet is not None:
            await fleet.close()
        if self._local_agents is not None:
            await self._local_agents.stop()
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
        await self._broadcast.close(self.leftovers, self.cleanup_error)
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.close()

    async def _clean_up(self) -> None:
        """Tell what is still queued from what is lost, then delete everything the run declared."""
        if self._admin is None or self._admin.is_closed:
            self._admin = await connect_first(self.settings, f"run {self.run_id}")  # not watched: the run is ending
        async with asyncio.timeout(CLEANUP_TIMEOUT + self.settings.timeout):
            await count_leftovers(self._admin_channel, self.ctx.ledger, self._shared_queues())
            names = set(self._shared_queues()) | {q.name for q in self.plan.topology.queues}
            self.leftovers = await delete(self._admin_channel, names, self.plan.topology.exchanges)

    def _cleanup_failed(self, exc: BaseException) -> None:
        """The broker is out of reach at the end: say what may still be there, and how to remove it later."""
        reason = mask_text(str(exc) or type(exc).__name__, self.settings.secrets())
        self.cleanup_error = f"the broker could not be reached to clean up ({reason})"
        shared = sorted(self._shared_queues())
        self.leftovers = [f"queue {q}" for q in shared] + [f"exchange {e.name}" for e in self.plan.topology.exchanges]
        self.ctx.event(
            EventKind.ERROR,
            "run",
            f"{self.cleanup_error}: {len(self.leftovers)} object(s) may be left; `amqp-lab cleanup` removes them "
            "once the broker is back. Messages still in them were not counted: the ledger calls them unchecked",
        )

    async def _settle_producers(self) -> None:
        """Let publishes already on the wire get their confirms, so the ledger knows their fate."""
        publishers = [c for c in self.roster.of_kind(Publisher) if c.active]
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
            waiting = any(c.unacked for c in self.roster.of_kind(Requester))
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

    def _shared_queues(self) -> list[str]:
        return [q.name for q in self.ctx.ledger.topology.queues if not q.exclusive and q.name.startswith(self.prefix)]

    # Live controls, also used by the schedule

    async def inject(self, name: str, action: str, value: float | None = None) -> None:
        """crash, hang, slow (value = factor), reject, nack, heal, stop, restart, pause, resume, rate, add, remove.
        Only while the run is running: once it drains, its clients are being stopped, and the log says so."""
        if self.state != "running":
            self.ctx.event(EventKind.REFUSED, name, f"{action}: the run is {self.state}, its clients are being stopped")
            return
        await self.roster.act(name, action, value)
        self._publish_snapshot()  # its effect shows at once, not with the next tick

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
            self.ctx.event(EventKind.ERROR, action.client, f"scheduled {action.action} failed: {exc}")

    # Measurement

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
                    unacked=self.roster.held_from(name),
                    in_rate=meters[0].sample(ledger.routed_to.get(name, 0), now),
                    out_rate=meters[1].sample(ledger.acked_in.get(name, 0), now),
                    place=self._placement.queues.get(name),
                )
            )
        return tuple(depths)

    def _counters(self) -> dict[str, int]:
        """The clients' counters, the agents' included."""
        fleet = self.roster.fleet
        counters = self.ctx.counters + fleet.counters() if fleet else self.ctx.counters
        return {str(name): count for name, count in counters.items()}

    def snapshot(self) -> RunSnapshot:
        ledger = self.ctx.ledger.counts()
        counters = self._counters()
        if "jobs_submitted" in counters:
            counters[Count.PENDING_JOBS] = pending_jobs(counters)
        if self._deliveries:
            counters[Count.MISSED] = self._deliveries.missed
        now = time.monotonic()
        rates = {name: meter.sample(getattr(ledger, name), now) for name, meter in self._meters.items()}
        fleet = self.roster.fleet
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
                *(client.stats() for client in self.roster.clients.values()),
                *(fleet.client_stats() if fleet else ()),
            ),
            queues=self._queue_depths(now),
            events=self.ctx.kept_events() if self.state == "finished" else tuple(self.ctx.events)[-EVENTS_IN_SNAPSHOT:],
            event_counts=dict(self.ctx.event_counts),
            subscribers=self._deliveries.checks(),
            notes=self.plan.notes,
            loop_lag=self._loop_lag,
            depths_sampled_at=self._depths_sampled_at,
            outage=None if self._down_since is None else now - self._down_since,
            outage_reason=self._outage_reason,
            nodes=self._placement.nodes,
            agents=fleet.summary() if fleet else (),
        )
