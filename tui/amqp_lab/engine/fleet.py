"""A run's agents, from its side: find them, hand each a share of the clients, gather what they report.

Everything goes through the broker: the control exchange out, the run's own exclusive queue back.
What agents report lands where the run's own clients would have written it (the ledger, latency,
counters, events), so the screens and the report cover every agent as one run. An agent that stops
reporting is lost: its clients show as lost, with what they had done, never silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from aio_pika.abc import AbstractConnection, AbstractExchange, AbstractIncomingMessage

from amqp_lab.broker.connection import connect_first
from amqp_lab.config import Settings
from amqp_lab.engine import agent_messages as messages
from amqp_lab.engine.agent import DISCOVER, declare_control, direct_key
from amqp_lab.engine.context import RunContext
from amqp_lab.engine.events import EventKind
from amqp_lab.engine.relay import ID_SPAN, replay
from amqp_lab.engine.snapshot import AgentSummary, ClientStats
from amqp_lab.scenario.figures import Count
from amqp_lab.scenario.model import Scenario
from amqp_lab.scenario.plan import ClientSpec

RECRUIT_TIMEOUT = 15.0
START_TIMEOUT = 30.0
LOST_AFTER = 5.0  # seconds without a report
FINISH_TIMEOUT = 15.0


class AgentsMissing(Exception):
    """Fewer agents answered than the run asked for, or one could not start its share."""


@dataclass
class AgentState:
    name: str
    clients: tuple[str, ...]
    state: str = "starting"  # starting, running, done, lost, failed
    last_seen: float = field(default_factory=time.monotonic)
    stats: dict[str, ClientStats] = field(default_factory=dict)
    counters: Counter[Count] = field(default_factory=Counter)


def split(specs: tuple[ClientSpec, ...], agents: int) -> list[list[str]]:
    """Client names per agent: each role dealt out in turn, so every agent gets its part of each."""
    shares: list[list[str]] = [[] for _ in range(agents)]
    dealt: Counter[str] = Counter()
    for spec in specs:
        shares[dealt[spec.role] % agents].append(spec.name)
        dealt[spec.role] += 1
    return shares


class Fleet:
    def __init__(self, settings: Settings, ctx: RunContext, run_id: str, scenario: Scenario) -> None:
        self._settings = settings
        self._ctx = ctx
        self._run_id = run_id
        self._scenario = scenario
        self.agents: dict[str, AgentState] = {}
        self._offers: list[str] = []
        self._mismatched: dict[str, str] = {}  # agents of another amqp-lab version, and what they said
        self._offered = asyncio.Event()
        self._changed = asyncio.Event()
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._inbox = ""
        self._watch: asyncio.Task[None] | None = None
        self._named: tuple[str, ...] = ()

    async def recruit(self, count: int, specs: tuple[ClientSpec, ...], named: tuple[str, ...] = ()) -> None:
        """Find `count` idle agents (only those `named`, when given: the run's own local ones) and start a share
        of `specs` on each; AgentsMissing says what failed."""
        self._named = named
        self._connection = await connect_first(self._settings)
        channel = await self._connection.channel()
        self._exchange = await declare_control(channel)
        inbox = await channel.declare_queue("", exclusive=True, auto_delete=True)
        self._inbox = inbox.name
        await inbox.consume(self._received, no_ack=True)
        deadline = time.monotonic() + RECRUIT_TIMEOUT
        discover = messages.Discover(run_id=self._run_id, reply_to=self._inbox)
        while len(self._offers) < count and time.monotonic() < deadline:
            for key in [direct_key(name) for name in named if name not in self._offers] or [DISCOVER]:
                await self._exchange.publish(messages.encode(discover), key)
            self._offered.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._offered.wait(), 1.0)
        if len(self._offers) < count and named:
            raise AgentsMissing(
                f"{len(self._offers)} of this run's {count} processes answered within {RECRUIT_TIMEOUT:g} s"
            )
        if len(self._offers) < count:
            others = "".join(f"; agent {name} {said}" for name, said in self._mismatched.items())
            raise AgentsMissing(
                f"{len(self._offers)} of {count} agents answered within {RECRUIT_TIMEOUT:g} s: start them with "
                f"`amqp-lab agent --url URL` on this broker ({self._settings.primary.display()}){others}"
            )
        scenario = self._scenario.model_dump(mode="json", by_alias=True)
        # The run's own processes in their order, whichever answered first: process 1 gets producer-1.
        chosen = [name for name in named if name in self._offers] if named else self._offers[:count]
        for number, (name, share) in enumerate(zip(chosen, split(specs, count), strict=True), 1):
            self.agents[name] = AgentState(name, tuple(share))
            assignment = messages.Assign(
                run_id=self._run_id,
                scenario=scenario,
                clients=tuple(share),
                reply_to=self._inbox,
                id_base=number * ID_SPAN,
            )
            await self._exchange.publish(messages.encode(assignment), direct_key(name))
        await self._until(lambda: all(a.state != "starting" for a in self.agents.values()), START_TIMEOUT)
        failed = [a.name for a in self.agents.values() if a.state in ("starting", "failed")]
        if failed:
            raise AgentsMissing(f"agent(s) {', '.join(failed)} could not start their share of the clients")
        self._watch = asyncio.get_running_loop().create_task(self._watch_agents())
        for agent in self.agents.values():
            self._ctx.event(EventKind.INFO, "run", f"agent {agent.name} runs {', '.join(agent.clients)}")

    async def _until(self, condition: Any, within: float) -> None:
        """Until `condition()` holds (checked on each message from an agent), or `within` seconds passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()

    async def _received(self, message: AbstractIncomingMessage) -> None:
        try:
            said = messages.to_run(message.body)
        except messages.OtherVersion as exc:
            if exc.envelope.agent and exc.envelope.run_id == self._run_id:
                self._mismatched[exc.envelope.agent] = str(exc)
            return
        if said is None:
            return
        if isinstance(said, messages.Offer):
            wanted = not self._named or said.agent in self._named
            if said.run_id == self._run_id and said.agent not in self._offers and wanted:
                self._offers.append(said.agent)
                self._offered.set()
            return
        agent = self.agents.get(said.agent)
        if agent is None:
            return
        agent.last_seen = time.monotonic()
        match said:
            case messages.Started():
                agent.state = "running"
            case messages.Report():
                self._gather(agent, said)
            case messages.Done():
                agent.state = "done"
            case messages.Failed():
                agent.state = "failed"
                self._ctx.event(EventKind.ERROR, said.agent, f"agent {said.agent} failed: {said.reason}")
        self._changed.set()

    def _gather(self, agent: AgentState, report: messages.Report) -> None:
        ctx = self._ctx
        replay(ctx, report.ops)
        for name, values in report.samples.items():
            latency = ctx.latency_of(name)
            for value in values:
                latency.record(value)
        agent.counters = Counter(report.counters)
        for event in report.events:
            ctx.event(event.kind, event.client, event.text)
        agent.stats = {stats.name: stats for stats in report.clients}
        if agent.state == "lost":
            agent.state = "running"
            ctx.event(EventKind.RESTART, "run", f"agent {agent.name} reports again")

    async def _watch_agents(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for agent in self.agents.values():
                if agent.state == "running" and now - agent.last_seen > LOST_AFTER:
                    agent.state = "lost"
                    self._ctx.event(
                        EventKind.CRASH,
                        "run",
                        f"agent {agent.name} lost: no report for {LOST_AFTER:g} s; its clients "
                        f"({', '.join(agent.clients)}) are counted with what they reported last",
                    )

    def client_stats(self) -> tuple[ClientStats, ...]:
        shown = []
        for agent in self.agents.values():
            for name in agent.clients:
                stats = agent.stats.get(name) or ClientStats(name, "", "starting", 0, 0, 0.0, 0)
                state = "lost" if agent.state == "lost" else stats.state
                shown.append(replace(stats, state=state, detail=stats.detail or self._where(agent.name)))
        return tuple(shown)

    def _where(self, agent: str) -> str:
        """Where a client runs, short enough for the clients table: the run's own processes by number."""
        return f"in process {self._named.index(agent) + 1}" if agent in self._named else f"on agent {agent}"

    def client_names(self) -> set[str]:
        """Every client the agents run."""
        return {name for agent in self.agents.values() for name in agent.clients}

    def holder(self, client: str) -> str | None:
        """The agent running `client`."""
        return next((agent.name for agent in self.agents.values() if client in agent.clients), None)

    def counters(self) -> Counter[Count]:
        return sum((agent.counters for agent in self.agents.values()), Counter())

    def summary(self) -> tuple[AgentSummary, ...]:
        return tuple(
            AgentSummary(
                agent.name,
                agent.state,
                agent.clients,
                sum(s.sent for s in agent.stats.values()),
                sum(s.received for s in agent.stats.values()),
            )
            for agent in self.agents.values()
        )

    async def pause(self) -> None:
        await self._tell_all(messages.Pause(run_id=self._run_id))

    async def finish(self) -> None:
        """Every agent closes its clients and sends its last report; lost ones are not waited for."""
        await self._tell_all(messages.Finish(run_id=self._run_id))
        await self._until(
            lambda: all(a.state in ("done", "lost", "failed") for a in self.agents.values()), FINISH_TIMEOUT
        )
        for agent in self.agents.values():
            if agent.state not in ("done", "failed"):
                agent.state = "lost"

    async def _tell_all(self, message: messages.Pause | messages.Finish) -> None:
        assert self._exchange is not None
        for agent in self.agents.values():
            if agent.state in ("running", "starting"):
                await self._exchange.publish(messages.encode(message), direct_key(agent.name))

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
