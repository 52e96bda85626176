"""RabbitMQ's routing rules, evaluated locally: which queues a message published to an exchange reaches.

Used by the ledger (how many copies to expect), by pub-sub's expected-delivery
check, and by the explorer's what-if. Tests compare it with the real broker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from amqp_lab.amqp.model import DEFAULT_EXCHANGE, Binding, Topology


def topic_words(key: str) -> list[str]:
    """Split as RabbitMQ does: "" has no words, "a..b" has an empty middle word."""
    return key.split(".") if key else []


def topic_matches(pattern: str, key: str) -> bool:
    """`*` is exactly one word (possibly empty), `#` is zero or more words."""
    return _match_words(topic_words(pattern), topic_words(key))


def _match_words(pattern: Sequence[str], words: Sequence[str]) -> bool:
    # Iterative over the pattern with memoised positions: patterns with many `#` stay linear enough.
    states = {0}
    for word in words:
        states = _expand_hashes(pattern, states)
        following: set[int] = set()
        for p in states:
            if p < len(pattern):
                if pattern[p] == "#":
                    following.add(p)
                elif pattern[p] in ("*", word):
                    following.add(p + 1)
        if not following:
            return False
        states = following
    return len(pattern) in _expand_hashes(pattern, states)


def _expand_hashes(pattern: Sequence[str], states: set[int]) -> set[int]:
    """A `#` may match nothing: each state at a `#` may also skip it."""
    expanded = set(states)
    todo = list(states)
    while todo:
        p = todo.pop()
        if p < len(pattern) and pattern[p] == "#" and p + 1 not in expanded:
            expanded.add(p + 1)
            todo.append(p + 1)
    return expanded


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def headers_match(arguments: Mapping[str, Any], headers: Mapping[str, Any]) -> bool:
    """x-match all (default) / any, and the -with-x forms that also compare x- arguments."""
    mode = arguments.get("x-match", "all")
    with_x = mode.endswith("-with-x")
    wanted = {k: v for k, v in arguments.items() if k != "x-match" and (with_x or not k.startswith("x-"))}
    results = (k in headers and (v is None or _same(v, headers[k])) for k, v in wanted.items())
    if mode.startswith("any"):
        return any(results)
    return all(results)


def binding_matches(exchange_type: str, binding: Binding, routing_key: str, headers: Mapping[str, Any]) -> bool:
    if exchange_type == "fanout":
        return True
    if exchange_type == "direct":
        return binding.routing_key == routing_key
    if exchange_type == "topic":
        return topic_matches(binding.routing_key, routing_key)
    if exchange_type == "headers":
        return headers_match(binding.arguments, headers)
    return False


def matching_bindings(
    topology: Topology, exchange: str, routing_key: str, headers: Mapping[str, Any] | None = None
) -> list[Binding]:
    """The bindings of one exchange that match (no exchange-to-exchange hops)."""
    found = topology.exchange(exchange)
    if found is None:
        return []
    return [
        b
        for b in topology.bindings
        if b.source == exchange and binding_matches(found.type, b, routing_key, headers or {})
    ]


@dataclass(frozen=True)
class Hop:
    """One exchange a message passes through, and the bindings of it that matched."""

    exchange: str
    matched: tuple[Binding, ...]
    alternate_of: str | None = None  # reached as the alternate exchange of this one


def trace(topology: Topology, exchange: str, routing_key: str, headers: Mapping[str, Any] | None = None) -> list[Hop]:
    """Every exchange the message passes through, following exchange-to-exchange bindings and alternates."""
    hops: list[Hop] = []
    seen: set[str] = set()
    pending: list[tuple[str, str | None]] = [(exchange, None)]
    while pending:
        name, alternate_of = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        bindings = tuple(matching_bindings(topology, name, routing_key, headers))
        hops.append(Hop(name, bindings, alternate_of))
        if not bindings:
            found = topology.exchange(name)
            if found is not None and found.alternate:
                pending.append((found.alternate, name))
        pending.extend((b.destination, None) for b in bindings if b.to_exchange)
    return hops


def route(
    topology: Topology, exchange: str, routing_key: str, headers: Mapping[str, Any] | None = None
) -> frozenset[str]:
    """Every queue the message reaches."""
    if exchange == DEFAULT_EXCHANGE:
        return frozenset([routing_key]) if topology.queue(routing_key) else frozenset()
    return reached(topology, trace(topology, exchange, routing_key, headers))


def reached(topology: Topology, hops: list[Hop]) -> frozenset[str]:
    """The queues a traced message lands in."""
    return frozenset(
        b.destination for hop in hops for b in hop.matched if not b.to_exchange and topology.queue(b.destination)
    )
