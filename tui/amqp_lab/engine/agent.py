"""`amqp-lab agent`: simulated clients on another machine, for a run that is coordinated through the broker.

An agent waits on the control exchange. A run looking for agents asks (discover); an idle agent
offers itself; the run hands it a share of the scenario's clients (assign). The agent runs them
against the topology the run declared, and four times a second sends the run what its clients
did: their state, the ledger calls they made (replayed on the run's ledger), latency samples,
counters and events. It pauses its producers, and finishes its share, when told; it finishes on
its own when the run's queue goes away (the run ended or died), so nothing of it stays behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from amqp_lab.broker.connection import connect_first
from amqp_lab.config import Settings
from amqp_lab.engine import agent_messages as messages
from amqp_lab.engine.clients import make_client
from amqp_lab.engine.clients.base import Client
from amqp_lab.engine.clients.producers import Producer, Publisher
from amqp_lab.engine.context import RunContext
from amqp_lab.engine.relay import ID_SPAN, LedgerRelay
from amqp_lab.scenario.model import Scenario
from amqp_lab.scenario.patterns import build, run_prefix

CONTROL = "amqp-lab.control"  # a topic exchange; auto-delete: it goes with the last agent
DISCOVER = "agents.discover"
REPORT_EVERY = 0.25
ASSIGN_TIMEOUT = 60.0  # a run's recruiting and starting, with room for a loaded machine
WATCH_EVERY = 2.0


def direct_key(agent: str) -> str:
    return f"agent.{agent}"


async def declare_control(channel: AbstractChannel) -> aio_pika.abc.AbstractExchange:
    return await channel.declare_exchange(CONTROL, aio_pika.ExchangeType.TOPIC, auto_delete=True)


class Samples:
    """A latency meter that keeps its samples to send them on."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def record(self, seconds: float) -> None:
        self.values.append(seconds)

    def take(self) -> list[float]:
        values, self.values = self.values, []
        return values


@dataclass
class AgentContext(RunContext):
    samples: dict[str, Samples] = field(default_factory=dict)

    def latency_of(self, name: str) -> Any:  # Samples, where a run's context has a Latency
        return self.samples.setdefault(name, Samples())

    def backlog(self, exchange: str, keys: tuple[str, ...], headers: Mapping[str, Any] | None) -> int | None:
        return None  # the run's ledger follows the copies, not this agent's relay


class Share:
    """The clients one run gave this agent."""

    def __init__(self, settings: Settings, assignment: messages.Assign, agent: str) -> None:
        scenario = Scenario.model_validate(assignment.scenario)
        plan = build(scenario, run_prefix(assignment.run_id))
        self.run_id = assignment.run_id
        self.coordinator = assignment.reply_to
        self.agent = agent
        relay = LedgerRelay(plan.topology, assignment.id_base)
        self.relay = relay
        self.ctx = AgentContext(settings, relay, random.Random(scenario.seed + assignment.id_base // ID_SPAN))  # type: ignore[arg-type]
        if plan.pattern == "pub-sub":  # the run counts, per subscriber, the events its patterns select
            self.ctx.on_publish = lambda exchange, key: relay.ops.append(["publish_seen", exchange, key])
        wanted = set(assignment.clients)
        self.clients: dict[str, Client] = {s.name: make_client(s, self.ctx) for s in plan.clients if s.name in wanted}
        self._events_sent = 0

    async def start(self) -> None:
        producers = [c for c in self.clients.values() if isinstance(c, Producer)]
        await asyncio.gather(*(c.start() for c in self.clients.values() if c not in producers))
        await asyncio.gather(*(c.start() for c in producers))

    def report(self) -> aio_pika.Message:
        events = [
            messages.AgentEvent(kind=e.kind, client=e.client, text=e.text)
            for e in self.ctx.events
            if e.seq > self._events_sent
        ]
        self._events_sent = self.ctx.events_logged
        return messages.encode(
            messages.Report(
                agent=self.agent,
                ops=self.relay.take(),
                samples={name: samples.take() for name, samples in self.ctx.samples.items()},
                counters=dict(self.ctx.counters),
                events=events,
                clients=[client.stats() for client in self.clients.values()],
            )
        )

    def stop_sending(self) -> None:
        """The run drains: the share's producers send nothing more."""
        for client in self.clients.values():
            if isinstance(client, Producer):
                client.finish()

    async def finish(self) -> None:
        """Producers stop, publishes in flight get their confirms, every client closes."""
        self.stop_sending()
        publishers = [c for c in self.clients.values() if isinstance(c, Publisher) and c.active]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await asyncio.gather(*(publisher.settle() for publisher in publishers))
        await asyncio.gather(*(client.close() for client in self.clients.values()), return_exceptions=True)
        self.ctx.close_sinks()


class Agent:
    """Waits for runs and serves them one at a time; with `for_run`, serves that run alone and then ends (the
    local processes a run starts with --processes)."""

    def __init__(
        self,
        settings: Settings,
        name: str | None = None,
        say: Callable[[str], None] = print,
        for_run: str | None = None,
    ) -> None:
        self.settings = settings
        self.name = name or f"{socket.gethostname()}-{random.randrange(16**4):04x}"
        self.for_run = for_run
        self._say = say
        self.share: Share | None = None
        self._share_task: asyncio.Task[None] | None = None
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._finishing = asyncio.Event()
        self._assigned = asyncio.Event()

    async def serve(self, stop: asyncio.Event) -> None:
        self._connection = connection = await connect_first(self.settings)
        try:
            self._channel = channel = await connection.channel()
            exchange = await declare_control(channel)
            queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
            for key in (DISCOVER, direct_key(self.name)):
                await queue.bind(exchange, key)
            await queue.consume(self._on_control, no_ack=True)
            self._say(f"agent {self.name} waiting for runs on {self.settings.primary.display()}")
            if self.for_run is None:
                await stop.wait()
            else:
                await self._serve_one(stop)
        finally:
            if self._share_task is not None:
                self._share_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._share_task
            await connection.close()

    async def _serve_one(self, stop: asyncio.Event) -> None:
        """Until the share is done, or `stop`; a run that hands out nothing within the time a run waits for its
        agents is gone, and so is this agent."""
        stopped = asyncio.ensure_future(stop.wait())
        assigned = asyncio.ensure_future(self._assigned.wait())
        try:
            await asyncio.wait([stopped, assigned], timeout=ASSIGN_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
            if self._assigned.is_set():
                if (share := self._share_task) is not None:  # None: it is done already
                    await asyncio.wait([stopped, share], return_when=asyncio.FIRST_COMPLETED)
            elif not stop.is_set():
                self._say(f"run {self.for_run} gave this agent nothing within {ASSIGN_TIMEOUT:g} s; ending")
        finally:
            stopped.cancel()
            assigned.cancel()

    async def _send(self, to: str, message: aio_pika.Message) -> None:
        assert self._channel is not None
        await self._channel.default_exchange.publish(message, routing_key=to)

    async def _on_control(self, message: AbstractIncomingMessage) -> None:
        try:
            said = messages.to_agent(message.body)
        except messages.OtherVersion as exc:
            asked = exc.envelope
            if asked.type == "discover" and asked.reply_to and self._share_task is None:
                self._say(f"run {asked.run_id} {exc}")  # and our offer, in our version, tells the run the same
                offer = messages.Offer(agent=self.name, run_id=asked.run_id)
                await self._send(asked.reply_to, messages.encode(offer))
            return
        match said:
            case messages.Discover() if self._share_task is None and self.for_run in (None, said.run_id):
                await self._send(said.reply_to, messages.encode(messages.Offer(agent=self.name, run_id=said.run_id)))
            case messages.Assign() if self._share_task is None:
                self._share_task = asyncio.get_running_loop().create_task(self._run_share(said))
                self._assigned.set()
            case messages.Pause() if self.share is not None:
                self.share.stop_sending()
            case messages.Finish() if self.share is not None and said.run_id == self.share.run_id:
                self._finishing.set()

    async def _run_share(self, assignment: messages.Assign) -> None:
        self._finishing = asyncio.Event()
        share = None
        try:
            share = Share(self.settings, assignment, self.name)
            await share.start()
            self.share = share
            self._say(f"run {share.run_id}: running {', '.join(share.clients)}")
            await self._send(share.coordinator, messages.encode(messages.Started(agent=self.name)))
            await self._report_until_finished(share)
            await share.finish()
            await self._send(share.coordinator, share.report())
            await self._send(share.coordinator, messages.encode(messages.Done(agent=self.name)))
            self._say(f"run {share.run_id}: done")
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError, ValueError) as exc:
            self._say(f"run {assignment.run_id}: {exc}")
            if share is not None:
                await share.finish()
            with contextlib.suppress(Exception):
                await self._send(
                    assignment.reply_to, messages.encode(messages.Failed(agent=self.name, reason=str(exc)))
                )
        finally:
            self.share, self._share_task = None, None

    async def _report_until_finished(self, share: Share) -> None:
        """Report four times a second; stop when told to finish, or when the run's queue is gone."""
        assert self._channel is not None
        watched = 0.0
        while not self._finishing.is_set():
            await self._send(share.coordinator, share.report())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finishing.wait(), REPORT_EVERY)
            watched += REPORT_EVERY
            if watched >= WATCH_EVERY:
                watched = 0.0
                if not await self._still_there(share.coordinator):
                    self._say(f"run {share.run_id}: the run is gone; finishing")
                    return

    async def _still_there(self, queue: str) -> bool:
        assert self._connection is not None
        probe = await self._connection.channel()  # a failed passive declare closes its channel
        try:
            await probe.declare_queue(queue, passive=True)
            return True
        except aiormq.exceptions.ChannelLockedResource:
            return True  # exclusive to the run's connection: it lives
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        finally:
            if not probe.is_closed:
                await probe.close()
