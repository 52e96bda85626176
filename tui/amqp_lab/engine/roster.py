"""A run's simulated clients by name, and the live controls that act on them (also used by the schedule)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from amqp_lab.engine.clients import make_client
from amqp_lab.engine.clients.base import Client
from amqp_lab.engine.clients.consumer import Consumer
from amqp_lab.engine.clients.producers import Producer
from amqp_lab.engine.clients.reducer import Reducer
from amqp_lab.engine.context import RunContext
from amqp_lab.engine.errors import RunError
from amqp_lab.engine.events import EventKind
from amqp_lab.engine.fleet import Fleet
from amqp_lab.scenario.plan import Plan

C = TypeVar("C", bound=Client)

SLOW_FACTOR = 10.0  # what slow does without a factor

# What each action does to one client: the kind of client it applies to, the act, and what the event log says
# (None: the client logs it itself).
CLIENT_ACTIONS: dict[
    str, tuple[type[Client], Callable[[Any, float | None], Awaitable[None] | None], tuple[EventKind, str] | None]
] = {
    "crash": (Client, lambda c, _: c.crash(), None),
    "stop": (Client, lambda c, _: c.stop(), (EventKind.STOP, "stopped")),
    "restart": (Client, lambda c, _: c.restart(), None),
    "pause": (Producer, lambda c, _: c.pause(), (EventKind.FAULT, "paused")),
    "resume": (Producer, lambda c, _: c.resume(), (EventKind.FAULT, "resumed")),
    "hang": (Consumer, lambda c, _: c.hang(), (EventKind.FAULT, "hang")),
    "slow": (Consumer, lambda c, v: c.slow(v or SLOW_FACTOR), (EventKind.FAULT, "slow x{value:g}")),
    "reject": (Consumer, lambda c, _: c.misbehave("reject"), (EventKind.FAULT, "reject")),
    "nack": (Consumer, lambda c, _: c.misbehave("nack"), (EventKind.FAULT, "nack")),
    "heal": (Consumer, lambda c, _: c.heal(), (EventKind.FAULT, "heal")),
}


class Roster:
    """The clients this process runs (with --agents, the rest run in agents: `fleet`)."""

    def __init__(self, plan: Plan, ctx: RunContext) -> None:
        self.plan = plan
        self.ctx = ctx
        self.clients: dict[str, Client] = {}
        self.fleet: Fleet | None = None

    def enlist(self) -> None:
        self.clients = {spec.name: make_client(spec, self.ctx) for spec in self.plan.clients}

    def of_kind(self, kind: type[C]) -> list[C]:
        return [c for c in self.clients.values() if isinstance(c, kind)]

    def _holder(self, name: str) -> str | None:
        """The agent (or process of the run's own) running client `name`; None for this machine's."""
        return self.fleet.holder(name) if self.fleet else None

    def client(self, name: str) -> Client:
        found = self.clients.get(name)
        remote = self._holder(name)
        if found is None and remote is not None:
            raise RunError(f"{name} runs on agent {remote}: controls reach the clients on this machine only")
        if found is None:
            raise RunError(f"no client named {name!r}; clients: {', '.join(self.clients)}")
        return found

    def targets(self, target: str) -> list[Client]:
        """A client by name, or every client of a role."""
        if target in self.clients:
            return [self.clients[target]]
        found = [c for c in self.clients.values() if c.role == target]
        if not found:
            raise RunError(f"no client or role {target!r}; roles: {', '.join(self.plan.roles)}")
        return found

    def held_from(self, queue: str) -> int:
        """Unacked, as the lab's clients that read the queue hold them: consumers, and the reducer's partial results."""
        readers = (c for c in self.clients.values() if isinstance(c, Consumer | Reducer) and c.spec.queue == queue)
        return sum(c.unacked for c in readers)

    async def add(self, role: str) -> Client:
        """A new client of `role` here, named after every one there is, here or in the run's agents: a name
        taken twice would show two clients as one row."""
        taken = set(self.clients) | (self.fleet.client_names() if self.fleet else set())
        n = 1 + sum(1 for c in self.clients.values() if c.role == role)
        while f"{role}-{n}" in taken:
            n += 1
        spec = self.plan.clone(role, f"{role}-{n}")
        if spec is None:
            raise RunError(f"no role {role!r} to add to; roles: {', '.join(self.plan.roles)}")
        client = self.clients[spec.name] = make_client(spec, self.ctx)
        await client.start()
        self.ctx.event(EventKind.INFO, client.name, f"added a {role}")
        return client

    async def remove(self, role: str) -> Client:
        candidates = [c for c in self.clients.values() if c.role == role and c.active]
        if not candidates:
            holders = {self._holder(spec.name) for spec in self.plan.clients if spec.role == role}
            elsewhere = sorted(holder for holder in holders if holder is not None)
            if elsewhere:
                raise RunError(
                    f"no {role} on this machine to remove: the run's {role}s run on {', '.join(elsewhere)}, "
                    "and controls reach the clients on this machine only"
                )
            raise RunError(f"no running {role} to remove")
        client = candidates[-1]
        await client.close()
        del self.clients[client.name]
        self.ctx.event(EventKind.STOP, client.name, f"removed a {role}")
        return client

    def set_rate(self, target: str, rate: float | None) -> None:
        for client in self.targets(target):
            if isinstance(client, Producer):
                client.set_rate(rate)
        shown = "max" if rate is None else f"{rate:g}/s"
        self.ctx.event(EventKind.FAULT, target, f"rate set to {shown}")

    def pause_producers(self) -> None:
        for client in self.of_kind(Producer):
            client.pause()
        self.ctx.event(EventKind.INFO, "run", "producers paused")

    def resume_producers(self) -> None:
        for client in self.of_kind(Producer):
            client.resume()
        self.ctx.event(EventKind.INFO, "run", "producers resumed")

    async def act(self, name: str, action: str, value: float | None = None) -> None:
        """crash, hang, slow (value = factor), reject, nack, heal, stop, restart, pause, resume, rate, add, remove."""
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
