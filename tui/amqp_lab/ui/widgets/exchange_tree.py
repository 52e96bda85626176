"""Exchanges as a tree: each exchange, its bindings (key → queue or exchange) and the destination's consumers.

Bindings are read when an exchange is expanded, never for every exchange:
on a broker with thousands of queues the whole binding list is large.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from amqp_lab.broker.models import Binding, Exchange, QueueStats
from amqp_lab.ui.text import inert, rate


@dataclass(frozen=True)
class ExchangeNode:
    exchange: Exchange


@dataclass(frozen=True)
class BindingNode:
    binding: Binding


def exchange_label(exchange: Exchange) -> Text:
    label = inert(exchange.name or "(default exchange)", "bold")
    label.append(f" · {exchange.type}")
    if exchange.alternate:
        label.append_text(inert(f" · alternate → {exchange.alternate}", "dim"))
    if exchange.internal:
        label.append(" · internal", style="dim")
    label.append(f" · in {rate(exchange.publish_in)}/s, out {rate(exchange.publish_out)}/s", style="dim")
    return label


def binding_label(binding: Binding, queues: Mapping[str, QueueStats]) -> Text:
    key = binding.routing_key if not binding.arguments else ", ".join(f"{k}={v}" for k, v in binding.arguments.items())
    label = inert(key or "(empty key)", "bold")
    label.append(" → ")
    label.append_text(inert(f"{binding.destination_type} {binding.destination}"))
    stats = queues.get(binding.destination_key) if binding.destination_type == "queue" else None
    if stats is not None:
        consumers = f"{stats.consumers} consumer{'s' if stats.consumers != 1 else ''}"
        label.append(f" · {consumers}, {stats.ready:,} ready, {stats.unacked:,} unacked", style="dim")
    return label


class ExchangeTree(Tree[ExchangeNode | BindingNode]):
    def __init__(self, **kwargs: object) -> None:
        super().__init__("exchanges", **kwargs)  # type: ignore[arg-type]
        self.show_root = False
        self.guide_depth = 3
        self._exchange_nodes: dict[str, TreeNode[ExchangeNode | BindingNode]] = {}

    def show(self, exchanges: Iterable[Exchange]) -> None:
        """Add, relabel and remove exchange nodes by key; expanded ones keep their bindings."""
        wanted = {e.key: e for e in sorted(exchanges, key=lambda e: (e.vhost, e.name))}
        for key in [k for k in self._exchange_nodes if k not in wanted]:
            self._exchange_nodes.pop(key).remove()
        for key, exchange in wanted.items():
            node = self._exchange_nodes.get(key)
            if node is None:
                node = self.root.add(exchange_label(exchange), ExchangeNode(exchange), allow_expand=True)
                self._exchange_nodes[key] = node
            elif node.data != ExchangeNode(exchange):
                node.data = ExchangeNode(exchange)
                node.set_label(exchange_label(exchange))

    def show_bindings(self, exchange: Exchange, bindings: list[Binding], queues: Mapping[str, QueueStats]) -> None:
        node = self._exchange_nodes.get(exchange.key)
        if node is None:
            return
        node.remove_children()
        if exchange.name == "":
            node.add_leaf(Text("every queue, bound by its own name: the routing key names the queue", style="italic"))
            return
        if not bindings:
            node.add_leaf(Text("no bindings: every message published here is unroutable", style="dim italic"))
        for binding in sorted(bindings, key=lambda b: (b.routing_key, b.destination)):
            node.add_leaf(binding_label(binding, queues), BindingNode(binding))

    def show_destinations(self, queues: Mapping[str, QueueStats]) -> None:
        """Relabel the bindings of expanded exchanges with their queues' current consumers and depth."""
        for node in self._exchange_nodes.values():
            if not node.is_expanded:
                continue
            for child in node.children:
                if isinstance(child.data, BindingNode):
                    label = binding_label(child.data.binding, queues)
                    if label != child.label:
                        child.set_label(label)

    @property
    def selected(self) -> Exchange | None:
        """The exchange under the cursor, or the one whose binding is under it."""
        node = self.cursor_node
        while node is not None and not isinstance(node.data, ExchangeNode):
            node = node.parent
        return node.data.exchange if node is not None and isinstance(node.data, ExchangeNode) else None
