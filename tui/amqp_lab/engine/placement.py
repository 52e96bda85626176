"""Where a run's queues live in a cluster, and which nodes are up: read from the management API every few seconds.

A run on one node learns little here; on a cluster it is how a node going down, a quorum queue
electing a new leader and a classic queue losing its only node become visible, as events and on
each queue of the snapshot. The management API may be on the node that went down: then the last
answer stands and the run goes on without it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from amqp_lab.broker.errors import ManagementError
from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.models import NodeStatus, QueueStats, node_labels
from amqp_lab.config import Settings, SettingsError
from amqp_lab.engine.context import RunContext
from amqp_lab.engine.events import EventKind

INTERVAL = 2.0


@dataclass(frozen=True)
class QueuePlace:
    """One queue's type and where it lives: its node (classic) or leader and replicas (quorum, stream)."""

    type: str
    state: str  # running; down when its only node (a classic queue's) is
    leader: str  # its node's label (see node_labels)
    replicas: int = 0
    replicas_down: int = 0


@dataclass(frozen=True)
class NodeState:
    name: str  # its label (see node_labels)
    state: str  # running, down, memory alarm, ...


class Placement:
    """Polls the run's queues and the cluster's nodes; says in the run's events what changed."""

    def __init__(
        self, settings: Settings, prefix: str, ctx: RunContext, unlisted: frozenset[str] = frozenset()
    ) -> None:
        self._settings = settings
        self._prefix = prefix
        self._unlisted = unlisted  # the run's own bookkeeping queues: not the user's topology
        self._ctx = ctx
        self.queues: dict[str, QueuePlace] = {}
        self.nodes: tuple[NodeState, ...] = ()
        self._labels: dict[str, str] = {}

    async def run(self) -> None:
        try:
            client = ManagementClient(self._settings)
        except SettingsError:
            return  # TLS files that do not load: the run's own connection says so
        async with client:
            while True:
                try:
                    nodes, (queues, _) = await asyncio.gather(
                        client.nodes(), client.queues(self._settings.vhost, name="^" + re.escape(self._prefix))
                    )
                except ManagementError:
                    pass  # the last answer stands
                else:
                    self._nodes_seen(nodes)
                    self._queues_seen(queues)
                await asyncio.sleep(INTERVAL)

    def _nodes_seen(self, nodes: list[NodeStatus]) -> None:
        before = {node.name: node.state for node in self.nodes}
        self._labels = node_labels([node.name for node in nodes])
        self.nodes = tuple(NodeState(self._label(node.name), node.state) for node in nodes)
        for node in self.nodes:
            was = before.get(node.name)
            if was is not None and was != node.state:
                kind = EventKind.RESTART if node.state == "running" else EventKind.DISCONNECT
                self._ctx.event(kind, "cluster", f"node {node.name}: {was} → {node.state}")

    def _label(self, node: str) -> str:
        return self._labels.get(node, node)

    def _queues_seen(self, queues: list[QueueStats]) -> None:
        for queue in queues:
            if queue.name in self._unlisted:
                continue
            down = len(set(queue.members) - set(queue.online))
            place = QueuePlace(queue.type, queue.state, self._label(queue.leader), len(queue.members), down)
            was = self.queues.get(queue.name)
            self.queues[queue.name] = place
            if was is None:
                continue
            local = queue.name.removeprefix(self._prefix)
            if was.state != place.state:
                kind = EventKind.RESTART if place.state == "running" else EventKind.DISCONNECT
                self._ctx.event(kind, local, f"queue {was.state} → {place.state} (on {place.leader})")
            if place.leader and was.leader != place.leader:
                moved = "leader moved" if place.replicas else "moved"  # a classic queue has one node, no leader
                self._ctx.event(EventKind.RESTART, local, f"{moved} from {was.leader} to {place.leader}")
            if was.replicas_down != place.replicas_down:
                online = place.replicas - place.replicas_down
                kind = EventKind.DISCONNECT if place.replicas_down else EventKind.RESTART
                self._ctx.event(kind, local, f"{online} of {place.replicas} replicas online")
