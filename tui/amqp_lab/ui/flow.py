"""The flow diagram: who publishes to which exchange, which binding takes it to which queue, who consumes it.

Built from the run's plan (what was declared) and its latest snapshot (rates,
depths, client states), one lane per queue. Clients are grouped by role per
queue, and lanes beyond a few per exchange fold into one, so a run with many
clients stays readable. Pure: the live screen, the builder's preview and the
tests call it alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from amqp_lab.amqp.model import Binding
from amqp_lab.engine.snapshot import ClientStats, QueueDepth, RunSnapshot
from amqp_lab.scenario.plan import PRODUCING, ClientSpec, ConsumerSpec, Plan, ReducerSpec
from amqp_lab.ui.colors import BAD, DEAD, FLOW, READY, UNACKED, WARN
from amqp_lab.ui.text import rate as shown_rate

LANES_PER_EXCHANGE = 6
BAR_WIDTH = 12
IDLE = 0.05  # messages per second below which an edge counts as idle
FEEDERS = {"reducer": "shard"}  # queues published to by default exchange: consumer role -> publishing role
SECONDARY = {"dead-letter": "☠ dead letters", "alternate": "↪ unroutable"}


@dataclass(frozen=True)
class RoleGroup:
    """Clients of one role at one end of a lane."""

    role: str
    clients: tuple[ClientStats, ...]

    @property
    def rate(self) -> float:
        return sum(c.rate for c in self.clients)

    def label(self) -> Text:
        if len(self.clients) == 1:
            text = Text(self.clients[0].name, style="bold")
        else:
            text = Text.assemble((self.role, "bold"), f" ×{len(self.clients)}")
        states = Counter(c.state for c in self.clients if c.state not in ("running", "planned"))
        if states:
            text.append(" (" + ", ".join(f"{n} {s}" if len(self.clients) > 1 else s for s, n in states.items()) + ")")
            text.stylize(BAD if {"crashed", "hung", "failed"} & set(states) else WARN, 0)
        return text


@dataclass(frozen=True)
class Lane:
    first: bool  # the first lane of its exchange: it draws the producers and the exchange
    producers: tuple[RoleGroup, ...]
    exchange: str  # shown name
    key: str
    queue: QueueDepth | None
    queue_name: str
    consumers: tuple[RoleGroup, ...]
    kind: str = "main"  # main, feed, dead-letter, alternate


def spec_of(plan: Plan, client: ClientStats) -> ClientSpec | None:
    """The plan's spec of a client, or of its role's template for one added while running."""
    for spec in plan.clients:
        if spec.name == client.name:
            return spec
    return plan.clone(client.role, client.name)


def planned_clients(plan: Plan) -> tuple[ClientStats, ...]:
    return tuple(ClientStats(s.name, s.role, "planned", 0, 0, 0.0, 0) for s in plan.clients)


def binding_label(binding: Binding, exchange_type: str) -> str:
    """What a binding matches, as the exchange reads it: a headers binding by its headers and x-match (all
    unless it says any; with no headers, all matches every message and any none), a fanout everything, the
    others by the routing key ("" is a key too)."""
    if exchange_type == "fanout":
        return ""
    if exchange_type == "headers":
        mode = str(binding.arguments.get("x-match", "all"))
        wanted = ", ".join(f"{k}={v}" for k, v in binding.arguments.items() if k != "x-match")
        return f"{mode}: {wanted or ('every message' if mode.startswith('all') else 'no message')}"
    return binding.routing_key or '""'


def _groups(clients: Iterable[ClientStats]) -> tuple[RoleGroup, ...]:
    by_role: dict[str, list[ClientStats]] = {}
    for client in clients:
        by_role.setdefault(client.role, []).append(client)
    return tuple(RoleGroup(role, tuple(found)) for role, found in by_role.items())


class FlowModel:
    """The lanes of one plan at one moment."""

    def __init__(self, plan: Plan, snapshot: RunSnapshot | None) -> None:
        self.plan = plan
        self.snapshot = snapshot
        clients = snapshot.clients if snapshot is not None else planned_clients(plan)
        self.specs = {c.name: spec_of(plan, c) for c in clients}
        self.clients = [c for c in clients if self.specs[c.name] is not None]
        self.depths = {q.name: q for q in snapshot.queues} if snapshot is not None else {}
        topology = plan.topology
        self.bindings = list(topology.bindings)
        self.queues = [q.name for q in topology.queues]
        for spec in self.specs.values():
            if isinstance(spec, ConsumerSpec) and spec.own_queue is not None and spec.queue not in self.queues:
                self.queues.append(spec.queue)
                self.bindings += spec.own_bindings
        self.lanes = self._lanes()

    def short(self, name: str) -> str:
        if name == "":
            return "(default)"
        return name.removeprefix(self.plan.prefix)

    def _consumers_of(self, queue: str) -> tuple[RoleGroup, ...]:
        return _groups(
            c
            for c in self.clients
            if isinstance(self.specs[c.name], ConsumerSpec | ReducerSpec) and self.specs[c.name].queue == queue  # type: ignore[union-attr]
        )

    def _producers_to(self, exchange: str) -> tuple[RoleGroup, ...]:
        return _groups(
            c
            for c in self.clients
            if isinstance(self.specs[c.name], PRODUCING) and self.specs[c.name].exchange == exchange  # type: ignore[union-attr]
        )

    def _lanes(self) -> list[Lane]:
        lanes: list[Lane] = []
        fed: set[str] = set()
        exchanges = list(dict.fromkeys(getattr(self.specs[c.name], "exchange", None) for c in self.clients))
        # Exchanges nobody publishes to directly: what a queue dead-letters, what an exchange cannot route.
        secondary = {q.dead_letter_exchange: "dead-letter" for q in self.plan.topology.queues if q.dead_letter_exchange}
        secondary |= {e.alternate: "alternate" for e in self.plan.topology.exchanges if e.alternate}
        for exchange in [e for e in exchanges if e is not None] + [e for e in secondary if e not in exchanges]:
            producers = self._producers_to(exchange)
            kind = secondary.get(exchange, "main") if not producers else "main"
            found = self.plan.topology.exchange(exchange)
            shown = self.short(exchange) + (f" ({found.type})" if found is not None else "")
            bindings = [b for b in self.bindings if b.source == exchange]
            if not bindings:
                lanes.append(Lane(True, producers, shown, "", None, "(no binding: unroutable)", (), kind))
                continue
            for i, binding in enumerate(bindings):
                fed.add(binding.destination)
                lanes.append(
                    Lane(
                        i == 0,
                        producers,
                        shown,
                        binding_label(binding, found.type if found is not None else "direct"),
                        self.depths.get(binding.destination),
                        self.short(binding.destination) + (" (exchange)" if binding.to_exchange else ""),
                        self._consumers_of(binding.destination),
                        kind,
                    )
                )
        for queue in self.queues:
            if queue in fed:
                continue
            consumers = self._consumers_of(queue)
            feeders = {FEEDERS.get(g.role) for g in consumers}
            producers = _groups(c for c in self.clients if c.role in feeders)
            lanes.append(
                Lane(
                    True,
                    producers,
                    "(default)",
                    self.short(queue),
                    self.depths.get(queue),
                    self.short(queue),
                    consumers,
                    "feed",
                )
            )
        return lanes

    def reply_lane(self) -> Text | None:
        """RPC and map-reduce answer through per-client reply queues: one line says so."""
        if any(getattr(s, "want_reply", False) for s in self.plan.clients):  # map-reduce: the reducer answers
            answering = _groups(c for c in self.clients if c.role == "reducer")
        else:
            answering = _groups(c for c in self.clients if getattr(self.specs[c.name], "reply", False))
        waiting = _groups(c for c in self.clients if c.role in ("requester", "submitter"))
        if not answering or not waiting:
            return None
        # Answers as the waiting clients receive them: a hung handler's edge goes idle (it showed the request rate).
        rate = sum(c.received_rate for c in self.clients if c.role in ("requester", "submitter"))
        text = Text()
        for group in answering:
            text.append_text(group.label())
        text.append(" ")
        text.append_text(_edge("replies", rate if self.snapshot else None, 18))
        text.append(" ")
        text.append("reply queues", style="italic")
        text.append(" (exclusive, one per client) ")
        text.append_text(_edge("", rate if self.snapshot else None, 8))
        text.append(" ")
        for group in waiting:
            text.append_text(group.label())
        return text


def _edge(label: str, rate: float | None, width: int = 14) -> Text:
    """━━ 40/s ━━▶ when moving, a dim ──▶ when idle; `rate` None: not measured, drawn as moving."""
    words = label if rate is None else " ".join(filter(None, (label, f"{shown_rate(rate)}/s")))
    moving = rate is None or rate >= IDLE
    fill = "━" if moving else "─"
    inner = f" {words} " if words else ""
    room = max(width - len(inner) - 1, 2)
    left = room // 2
    return Text(fill * left + inner + fill * (room - left) + "▶", style=FLOW if moving else "dim")


def _bar(depth: QueueDepth | None, scale: int) -> Text:
    """Ready then unacked as one bar, and the two numbers."""
    if depth is None:
        return Text("▕" + "·" * BAR_WIDTH + "▏ –", style="dim")
    total = depth.ready + depth.unacked
    scale = max(scale, total, 1)
    ready = round(BAR_WIDTH * depth.ready / scale)
    unacked = min(round(BAR_WIDTH * depth.unacked / scale), BAR_WIDTH - ready)
    if depth.ready and not ready:
        ready = 1
    text = Text("▕")
    text.append("█" * ready, style=READY)
    text.append("█" * unacked, style=UNACKED)
    text.append("░" * (BAR_WIDTH - ready - unacked), style="dim")
    text.append("▏")
    text.append(f" {depth.ready:,}", style=f"bold {READY}" if depth.ready else "")
    text.append("│", style="dim")
    text.append(f"{depth.unacked:,}", style=f"bold {UNACKED}" if depth.unacked else "")
    return text


def _labels(groups: tuple[RoleGroup, ...]) -> Text:
    return Text(", ").join(g.label() for g in groups) if groups else Text("")


def _exchange_groups(lanes: list[Lane]) -> list[list[Lane]]:
    """Lanes by exchange: each group starts with the lane that names its exchange."""
    groups: list[list[Lane]] = []
    for lane in lanes:
        if lane.first or not groups:
            groups.append([])
        groups[-1].append(lane)
    return groups


def render_flow(
    plan: Plan, snapshot: RunSnapshot | None, scale: int = 10, wide: bool = True
) -> tuple[RenderableType, int]:
    """The diagram and its number of lines: one lane per queue, folded beyond LANES_PER_EXCHANGE, then
    returns, drops and replies.

    Wide (about 118 columns) draws each lane on one line; narrow draws the producers and
    the exchange on a line of their own, above the exchange's bindings.
    """
    model = FlowModel(plan, snapshot)
    parts: list[RenderableType] = []
    table = _lane_table(wide)
    for group in _exchange_groups(model.lanes):
        if not wide:
            parts.append(Text(" ").join(_source(group[0], snapshot)))
        for i, lane in enumerate(group[:LANES_PER_EXCHANGE]):
            last = i == len(group) - 1
            _add_lane(table, lane, scale, snapshot, wide, last)
        if len(group) > LANES_PER_EXCHANGE:
            _add_fold(table, group[LANES_PER_EXCHANGE:], wide)
        if not wide:
            parts.append(table)
            table = _lane_table(wide)
    if wide:
        parts.append(table)
    reply = model.reply_lane()
    if reply is not None:
        parts.append(reply)
    parts += _side_paths(snapshot)
    for part in parts:
        if isinstance(part, Text):  # one line each, always: the line count below stays true
            part.no_wrap, part.overflow = True, "ellipsis"
    lines = sum(part.row_count + part.show_header if isinstance(part, Table) else 1 for part in parts)
    return Group(*parts), lines


def _side_paths(snapshot: RunSnapshot | None) -> list[Text]:
    """What did not take the main path: returned, dropped, dead-lettered, refused; one line each."""
    if snapshot is None:
        return []
    ledger = snapshot.ledger
    lines = []
    if ledger.returned:
        lines.append(Text.assemble((f"↩ {ledger.returned:,} returned", WARN), " (mandatory, no queue matched)"))
    if ledger.unroutable:
        lines.append(Text.assemble((f"✗ {ledger.unroutable:,} dropped", BAD), " (unroutable, not mandatory)"))
    if ledger.dead_lettered:
        expired = f" ({ledger.expired:,} expired)" if ledger.expired else ""
        lines.append(Text.assemble((f"☠ {ledger.dead_lettered:,} dead-lettered", DEAD), expired))
    if ledger.refused:
        lines.append(
            Text.assemble((f"⊘ {ledger.refused:,} refused", BAD), " (immediate: the broker closed the connection)")
        )
    return lines


def _lane_table(wide: bool) -> Table:
    table = Table(box=None, padding=(0, 1, 0, 0), show_header=wide, header_style="bold dim", expand=False)
    headers = ("producers", "", "exchange") if wide else ()
    for header in (*headers, "binding", "queue", "ready│unacked", "", "consumers"):
        table.add_column(header, no_wrap=True, overflow="ellipsis")
    return table


def _add_fold(table: Table, folded: list[Lane], wide: bool) -> None:
    """Lanes past LANES_PER_EXCHANGE as one: how many, and their summed depths."""
    ready = sum(lane.queue.ready for lane in folded if lane.queue)
    unacked = sum(lane.queue.unacked for lane in folded if lane.queue)
    consumers = sum(len(g.clients) for lane in folded for g in lane.consumers)
    lead = ("", "", Text(" └", style="dim")) if wide else ()
    table.add_row(
        *lead,
        Text(" └ … folded" if not wide else "… folded", style="dim"),
        Text(f"{len(folded)} more queues", style="italic"),
        Text(f"{ready:,}│{unacked:,}"),
        "",
        Text(f"{consumers} consumers", style="italic"),
    )


def _source(lane: Lane, snapshot: RunSnapshot | None) -> tuple[Text, Text, Text]:
    """Who publishes, the edge into the exchange (with their rate once measured), and the exchange."""
    secondary = lane.kind in SECONDARY
    producers = Text(SECONDARY[lane.kind], style=DEAD) if secondary else _labels(lane.producers)
    rate = sum(g.rate for g in lane.producers) if lane.producers and snapshot is not None else None
    into = _edge("", rate, 10) if lane.producers or secondary else Text("")
    return producers, into, Text(lane.exchange, style=DEAD if secondary else "bold")


def _place(depth: QueueDepth | None, snapshot: RunSnapshot | None) -> Text:
    """A queue's type when not classic and, in a cluster, its node or leader and replicas online."""
    place = depth.place if depth is not None else None
    if place is None or snapshot is None:
        return Text("")
    parts = [Text(place.type, style="dim")] if place.type != "classic" else []
    if len(snapshot.nodes) > 1:
        parts.append(Text(f"@{place.leader}", style="dim"))
        if place.replicas:
            online = place.replicas - place.replicas_down
            parts.append(Text(f"{online}/{place.replicas}", style=WARN if place.replicas_down else "dim"))
    if place.state != "running":
        parts.append(Text(place.state.upper(), style=BAD))
    return Text(" ").join([Text(""), *parts]) if parts else Text("")


def _add_lane(table: Table, lane: Lane, scale: int, snapshot: RunSnapshot | None, wide: bool, last: bool) -> None:
    rate_in = lane.queue.in_rate if lane.queue else None
    rate_out = lane.queue.out_rate if lane.queue else None
    branch = Text(" └" if last else " ├", style="dim")
    lead: tuple[Text, ...] = ()
    if wide:
        lead = _source(lane, snapshot) if lane.first else (Text(""), Text(""), branch)
    key = _edge(lane.key, rate_in, 16)
    if not wide:
        key = branch + " " + key
    table.add_row(
        *lead,
        key,
        Text.assemble((lane.queue_name, "bold"), _place(lane.queue, snapshot)),
        _bar(lane.queue, scale),
        _edge("", rate_out, 10) if lane.consumers else Text("  (no consumer)", style=WARN),
        _labels(lane.consumers),
    )
