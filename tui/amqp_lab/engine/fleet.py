"""A run's agents, from its side: find them, hand each a share of the clients, gather what they report.

Everything goes through the broker: the control exchange out, the run's own exclusive queue back.
What agents report lands where the run's own clients would have written it (the ledger, latency,
counters, events), so the screens and the report cover every agent as one run. An agent that stops
reporting is lost: its clients show as lost, with what they had done, never silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from aio_pika.abc import AbstractConnection, AbstractExchange, AbstractIncomingMessage

from amqp_lab.broker.connection import connect_first
from amqp_lab.config import Settings
from amqp_lab.engine.agent import DISCOVER, declare_control, direct_key, encode
from amqp_lab.engine.context import RunContext
from amqp_lab.engine.relay import ID_SPAN, replay
from amqp_lab.engine.snapshot import AgentSummary, ClientStats
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
    counters: Counter[str] = field(default_factory=Counter)


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
        self._offered = asyncio.Event()
        self._changed = asyncio.Event()
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._inbox = ""
        self._watch: asyncio.Task[None] | None = None

    async def recruit(self, count: int, specs: tuple[ClientSpec, ...]) -> None:
        """Find `count` idle agents and start a share of `specs` on each; AgentsMissing says what failed."""
        self._connection = await connect_first(self._settings)
        channel = await self._connection.channel()
        self._exchange = await declare_control(channel)
        inbox = await channel.declare_queue("", exclusive=True, auto_delete=True)
        self._inbox = inbox.name
        await inbox.consume(self._received, no_ack=True)
        deadline = time.monotonic() + RECRUIT_TIMEOUT
        while len(self._offers) < count and time.monotonic() < deadline:
            await self._exchange.publish(encode("discover", run_id=self._run_id, reply_to=self._inbox), DISCOVER)
            self._offered.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._offered.wait(), 1.0)
        if len(self._offers) < count:
            raise AgentsMissing(
                f"{len(self._offers)} of {count} agents answered within {RECRUIT_TIMEOUT:g} s: start them with "
                f"`amqp-lab agent --url URL` on this broker ({self._settings.primary.display()})"
            )
        scenario = self._scenario.model_dump(mode="json", by_alias=True)
        for number, (name, share) in enumerate(zip(self._offers[:count], split(specs, count), strict=True), 1):
            self.agents[name] = AgentState(name, tuple(share))
            assignment = {"run_id": self._run_id, "scenario": scenario, "clients": share, "reply_to": self._inbox}
            await self._exchange.publish(encode("assign", **assignment, id_base=number * ID_SPAN), direct_key(name))
        await self._until(lambda: all(a.state != "starting" for a in self.agents.values()), START_TIMEOUT)
        failed = [a.name for a in self.agents.values() if a.state in ("starting", "failed")]
        if failed:
            raise AgentsMissing(f"agent(s) {', '.join(failed)} could not start their share of the clients")
        self._watch = asyncio.get_running_loop().create_task(self._watch_agents())
        for agent in self.agents.values():
            self._ctx.event("info", "run", f"agent {agent.name} runs {', '.join(agent.clients)}")

    async def _until(self, condition: Any, within: float) -> None:
        """Until `condition()` holds (checked on each message from an agent), or `within` seconds passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()

    async def _received(self, message: AbstractIncomingMessage) -> None:
        try:
            data = json.loads(message.body)
            kind, name = data["type"], data["agent"]
        except (ValueError, KeyError, TypeError):
            return
        if kind == "offer":
            if data.get("run_id") == self._run_id and name not in self._offers:
                self._offers.append(name)
                self._offered.set()
            return
        agent = self.agents.get(name)
        if agent is None:
            return
        agent.last_seen = time.monotonic()
        if kind == "started":
            agent.state = "running"
        elif kind == "report":
            self._gather(agent, data)
        elif kind == "done":
            agent.state = "done"
        elif kind == "failed":
            agent.state = "failed"
            self._ctx.event("error", name, f"agent {name} failed: {data.get('reason', '')}")
        self._changed.set()

    def _gather(self, agent: AgentState, data: dict[str, Any]) -> None:
        ctx = self._ctx
        replay(ctx, data["ops"])
        for name, values in data["samples"].items():
            latency = ctx.latency_of(str(name))
            for value in values:
                latency.record(float(value))
        agent.counters = Counter({str(k): int(v) for k, v in data["counters"].items()})
        for event in data["events"]:
            ctx.event(str(event["kind"]), str(event["client"]), str(event["text"]))
        agent.stats = {s["name"]: ClientStats(**s) for s in data["clients"]}
        if agent.state == "lost":
            agent.state = "running"
            ctx.event("restart", "run", f"agent {agent.name} reports again")

    async def _watch_agents(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for agent in self.agents.values():
                if agent.state == "running" and now - agent.last_seen > LOST_AFTER:
                    agent.state = "lost"
                    self._ctx.event(
                        "crash",
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
                shown.append(replace(stats, state=state, detail=stats.detail or f"on agent {agent.name}"))
        return tuple(shown)

    def holder(self, client: str) -> str | None:
        """The agent running `client`."""
        return next((agent.name for agent in self.agents.values() if client in agent.clients), None)

    def counters(self) -> Counter[str]:
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
        await self._tell_all("pause")

    async def finish(self) -> None:
        """Every agent closes its clients and sends its last report; lost ones are not waited for."""
        await self._tell_all("finish")
        await self._until(
            lambda: all(a.state in ("done", "lost", "failed") for a in self.agents.values()), FINISH_TIMEOUT
        )
        for agent in self.agents.values():
            if agent.state not in ("done", "failed"):
                agent.state = "lost"

    async def _tell_all(self, kind: str) -> None:
        assert self._exchange is not None
        for agent in self.agents.values():
            if agent.state in ("running", "starting"):
                await self._exchange.publish(encode(kind, run_id=self._run_id), direct_key(agent.name))

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
