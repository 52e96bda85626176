"""The ledger: every message the lab publishes is followed until it is settled, so a loss cannot hide.

Each published message carries an id. For every queue a message should reach
(RabbitMQ's routing rules, evaluated on the run's live topology) the ledger
holds one outstanding copy; acking, rejecting, dead-lettering, expiry, a
return, a nack or draining at the end settle it. What is still outstanding when
the run is over was lost: it should exist somewhere and does not.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from amqp_lab.amqp.model import DEFAULT_EXCHANGE, DIRECT_REPLY_TO, Topology
from amqp_lab.amqp.routing import route

ID_HEADER = "x-lab-id"
TIME_HEADER = "x-lab-ts"


def lab_id(headers: Mapping[str, Any]) -> int | None:
    """The ledger id a message carries, or None for a message the lab did not publish."""
    msg_id = headers.get(ID_HEADER)
    return msg_id if isinstance(msg_id, int) else None


def stamp() -> int:
    """Wall-clock microseconds: an integer header survives AMQP exactly (a float may travel as 32 bits)."""
    return time.time_ns() // 1000


def age(stamped: object) -> float | None:
    """Seconds since `stamp()` gave `stamped`, or None when the header is not one of ours."""
    if isinstance(stamped, int) and not isinstance(stamped, bool):
        return (time.time_ns() // 1000 - stamped) / 1_000_000
    return None


# What each figure of the ledger means, in the words the run screen, the summary and docs/scenarios.md use.
MEANINGS = {
    "published": "sent by the lab's clients",
    "confirmed": "taken by the broker (confirm, commit)",
    "nacked": "refused by the broker (queue full)",
    "returned": "mandatory, routed nowhere: sent back",
    "delivered_and_returned": "reply-to answers also returned: acked",
    "refused": "connection closed instead (immediate)",
    "unroutable": "routed nowhere, not mandatory: dropped",
    "copies": "queue copies the routing rules expect",
    "delivered": "to consumers, redeliveries included",
    "redelivered": "delivered again: a crash, a nack, a peek",
    "acked": "acknowledged by a consumer: done",
    "requeued": "back in the queue: a nack, or held at a crash",
    "rejected": "rejected, no dead-letter exchange: dropped",
    "dead_lettered": "moved by the broker to a dead-letter exchange",
    "expired": "of those, because a TTL ran out",
    "discarded": "in an exclusive queue gone with its client",
    "duplicates": "settled twice: a redelivery of an acked copy",
    "still_queued": "in a queue when the run ended",
    "kept": "written to a stream: owed to no one",
    "read": "read from streams (a replay reads again)",
    "outstanding": "not settled yet: queued, in flight, held",
    "lost": "unsettled after the end, found nowhere",
    "unchecked": "unsettled, the broker out of reach at the end",
}


@dataclass(frozen=True)
class LedgerCounts:
    """The ledger's figures at one moment; MEANINGS says what each one counts."""

    published: int = 0
    confirmed: int = 0
    nacked: int = 0
    returned: int = 0
    delivered_and_returned: int = 0
    refused: int = 0
    unroutable: int = 0
    copies: int = 0
    delivered: int = 0
    redelivered: int = 0
    acked: int = 0
    requeued: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    expired: int = 0
    discarded: int = 0
    duplicates: int = 0
    still_queued: int = 0
    kept: int = 0
    read: int = 0
    outstanding: int = 0
    lost: int = 0
    unchecked: int = 0

    @property
    def accounted(self) -> int:
        """Where the expected copies are now. The ledger's identity: copies == accounted, at every moment (a
        dead-lettered copy is settled where it died and expected again where it went: one more copy)."""
        return self.acked + self.rejected + self.dead_lettered + self.discarded + self.still_queued + self.outstanding

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Ledger:
    """Counts and outstanding copies. Touched once per message event; snapshots are taken from it."""

    def __init__(self, topology: Topology, gathered: bool = False) -> None:
        self._routes: dict[tuple[str, str], frozenset[str]] = {}
        self.set_topology(topology)
        self._outstanding: dict[str, set[int]] = {}
        self._next_id = 0
        self._counts: dict[str, int] = dict.fromkeys(LedgerCounts().as_dict(), 0)
        self._finished = False
        self._checked = True
        self.acked_in: dict[str, int] = {}
        # Per exchange and per queue, as the broker's statistics count them (publish_in, deliver_get, publish).
        self.published_to: Counter[str] = Counter()  # messages published to each exchange
        self.delivered_in: Counter[str] = Counter()  # deliveries the lab's consumers got from each queue
        self.acks_in: Counter[str] = Counter()  # acks its consumers sent there, duplicates included
        self.routed_to: dict[str, int] = {}  # copies each queue was sent: its inbound flow
        self.discarded_in: dict[str, int] = {}  # copies each exclusive queue held when it went away
        # Gathered from agents, an ack can arrive before the publish it settles (another agent's batch is later):
        # such acks wait here for their copy; any left when the run ends were duplicates.
        self._early: Counter[tuple[int, str]] | None = Counter() if gathered else None
        self._returned_answers: set[int] = set()  # direct reply-to answers returned: RabbitMQ may deliver them too

    @property
    def topology(self) -> Topology:
        return self._topology

    def set_topology(self, topology: Topology) -> None:
        """The live topology changed (a client declared or lost its own queue)."""
        self._topology = topology
        self._routes.clear()
        # Routes are cached per (exchange, key), except through headers exchanges, where headers decide.
        self._headers_exchanges = {e.name for e in topology.exchanges if e.type == "headers"}
        self.streams = frozenset(q.name for q in topology.queues if q.type == "stream")

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def queues_for(self, exchange: str, routing_key: str, headers: Mapping[str, Any] | None = None) -> frozenset[str]:
        if exchange == DEFAULT_EXCHANGE and routing_key.startswith(DIRECT_REPLY_TO):
            return frozenset([DIRECT_REPLY_TO])
        if exchange in self._headers_exchanges:
            return route(self._topology, exchange, routing_key, headers)
        key = (exchange, routing_key)
        queues = self._routes.get(key)
        if queues is None:
            queues = self._routes[key] = route(self._topology, exchange, routing_key, headers)
        return queues

    def _expect(self, msg_id: int, queues: frozenset[str]) -> None:
        for queue in queues:
            self.routed_to[queue] = self.routed_to.get(queue, 0) + 1
            if queue in self.streams:
                self._counts["kept"] += 1
                continue
            if self._early and self._early[(msg_id, queue)]:
                self._early[(msg_id, queue)] -= 1
                self._counts["copies"] += 1
                self._counts["acked"] += 1
                self.acked_in[queue] = self.acked_in.get(queue, 0) + 1
                continue
            # One copy per message and queue; a second, if it comes, is a duplicate. (A message met dead-lettered
            # before the ledger knew where it died, then rejected into the same queue, counted two copies where
            # one was outstanding: the figures did not add up.)
            expected = self._outstanding.setdefault(queue, set())
            if msg_id not in expected:
                expected.add(msg_id)
                self._counts["copies"] += 1

    def _settle(self, msg_id: int, queue: str) -> bool:
        copies = self._outstanding.get(queue)
        if copies is None or msg_id not in copies:
            return False
        copies.remove(msg_id)
        return True

    # Publishing side

    def published(
        self, msg_id: int, exchange: str, routing_key: str, headers: Mapping[str, Any] | None, mandatory: bool
    ) -> frozenset[str]:
        self._counts["published"] += 1
        self.published_to[exchange] += 1
        queues = self.queues_for(exchange, routing_key, headers)
        if queues:
            self._expect(msg_id, queues)
        elif not mandatory:
            self._counts["unroutable"] += 1
        return queues

    def resent(
        self,
        msg_id: int,
        exchange: str,
        routing_key: str,
        headers: Mapping[str, Any] | None,
        mandatory: bool,
        before: frozenset[str],
    ) -> frozenset[str]:
        """Published again after a lost connection, into a topology that may have changed meanwhile (an
        exclusive queue went, its copies discarded, and came back): expect a copy wherever it routes now and
        none is outstanding. A copy the first attempt left in a queue stays expected once; should both be
        delivered, the second ack is a duplicate."""
        now = self.queues_for(exchange, routing_key, headers)
        for queue in before - now:
            if self._settle(msg_id, queue):
                self._counts["copies"] -= 1
        missing = frozenset(q for q in now if msg_id not in self._outstanding.get(q, ()))
        if missing:
            self._expect(msg_id, missing)
        if not mandatory and bool(before) != bool(now):
            self._counts["unroutable"] += 1 if before else -1
        return now

    def confirmed(self) -> None:
        self._counts["confirmed"] += 1

    def _withdraw(self, msg_id: int, exchange: str, routing_key: str, headers: Mapping[str, Any] | None) -> None:
        for queue in self.queues_for(exchange, routing_key, headers):
            if self._settle(msg_id, queue):
                self._counts["copies"] -= 1

    def withdrawn(self, msg_id: int, queues: frozenset[str]) -> None:
        """A message that will be replaced by another (a reply whose request is answered again)."""
        for queue in queues:
            if self._settle(msg_id, queue):
                self._counts["copies"] -= 1

    def nacked(self, msg_id: int, exchange: str, routing_key: str, headers: Mapping[str, Any] | None) -> None:
        self._counts["nacked"] += 1
        self._withdraw(msg_id, exchange, routing_key, headers)

    def returned(self, msg_id: int, exchange: str, routing_key: str, headers: Mapping[str, Any] | None) -> None:
        if exchange == DEFAULT_EXCHANGE and routing_key.startswith(DIRECT_REPLY_TO):
            # RabbitMQ returns a mandatory answer to direct reply-to even when it delivers it. Delivered already:
            # counted once, as acked. Not yet: returned, until the requester gets it after all.
            if not self._settle(msg_id, DIRECT_REPLY_TO):
                self._counts["delivered_and_returned"] += 1
                return
            self._counts["copies"] -= 1
            self._returned_answers.add(msg_id)
            self._counts["returned"] += 1
            return
        self._counts["returned"] += 1
        self._withdraw(msg_id, exchange, routing_key, headers)

    def refused(self, msg_id: int, exchange: str, routing_key: str, headers: Mapping[str, Any] | None) -> None:
        self._counts["refused"] += 1
        self._withdraw(msg_id, exchange, routing_key, headers)

    # Consuming side

    def delivered(self, msg_id: int, queue: str, redelivered: bool, death: Mapping[str, Any] | None = None) -> None:
        """A delivery from `queue`; `death` is the newest x-death entry of a dead-lettered message."""
        self._counts["delivered"] += 1
        self.delivered_in[queue] += 1
        if redelivered:
            self._counts["redelivered"] += 1
        self._follow_death(msg_id, queue, death)

    def _follow_death(self, msg_id: int, queue: str, death: Mapping[str, Any] | None) -> None:
        """Met in `queue`, dead-lettered by the broker (expiry, max-length): its copy at the source is settled and
        one is expected here instead. `death` is its newest x-death entry."""
        copies = self._outstanding.get(queue)
        if death is not None and (copies is None or msg_id not in copies):
            source = str(death.get("queue", ""))
            if self._settle(msg_id, source):
                self._counts["dead_lettered"] += 1
                if death.get("reason") == "expired":
                    self._counts["expired"] += 1
            self._expect(msg_id, frozenset([queue]))

    def acked(self, msg_id: int, queue: str) -> None:
        self.acks_in[queue] += 1
        if queue in self.streams or self._settle(msg_id, queue):
            self._counts["read" if queue in self.streams else "acked"] += 1
            self.acked_in[queue] = self.acked_in.get(queue, 0) + 1
        elif queue == DIRECT_REPLY_TO and msg_id in self._returned_answers:
            # Returned first, delivered after all: a delivered answer, not a duplicate nor a return.
            self._returned_answers.discard(msg_id)
            self._counts["returned"] -= 1
            self._counts["copies"] += 1
            self._counts["delivered_and_returned"] += 1
            self._counts["acked"] += 1
            self.acked_in[queue] = self.acked_in.get(queue, 0) + 1
        elif self._early is not None:
            self._early[(msg_id, queue)] += 1
        else:
            self._counts["duplicates"] += 1

    def requeued(self, count: int = 1) -> None:
        self._counts["requeued"] += count

    def rejected(self, msg_id: int, queue: str, routing_key: str, headers: Mapping[str, Any] | None) -> None:
        """Rejected without requeue: dead-lettered if the queue has a dead-letter exchange, else dropped."""
        if not self._settle(msg_id, queue):
            self._counts["duplicates"] += 1
            return
        found = self._topology.queue(queue)
        if found is None or found.dead_letter_exchange is None:
            self._counts["rejected"] += 1
            return
        self._counts["dead_lettered"] += 1
        key = found.dead_letter_routing_key or routing_key
        self._expect(msg_id, self.queues_for(found.dead_letter_exchange, key, headers))

    def queue_gone(self, queue: str) -> None:
        """An exclusive queue went away with its client: what it held is discarded."""
        copies = self._outstanding.pop(queue, set())
        self._counts["discarded"] += len(copies)
        if copies:
            self.discarded_in[queue] = self.discarded_in.get(queue, 0) + len(copies)

    def drained(self, msg_id: int, queue: str, death: Mapping[str, Any] | None = None) -> None:
        """Found in a queue at the end of the run (in a dead-letter queue: `death` says where from)."""
        self._follow_death(msg_id, queue, death)
        if self._settle(msg_id, queue):
            self._counts["still_queued"] += 1

    def dead_letter_queues(self, queue: str) -> set[str]:
        """Where `queue` dead-letters to: the queues bound to its dead-letter exchange."""
        found = self._topology.queue(queue)
        if found is None or found.dead_letter_exchange is None:
            return set()
        return {b.destination for b in self._topology.bindings if b.source == found.dead_letter_exchange}

    def finish(self, checked: bool = True) -> None:
        """The run is over: whatever is outstanding now is lost, or, when the broker could not be reached to look
        for it (`checked` false), unchecked."""
        self._finished = True
        self._checked = checked
        if self._early:
            self._counts["duplicates"] += self._early.total()
            self._early.clear()

    def counts(self) -> LedgerCounts:
        outstanding = sum(len(copies) for copies in self._outstanding.values())
        over = outstanding if self._finished else 0
        lost, unchecked = (over, 0) if self._checked else (0, over)
        return LedgerCounts(**{**self._counts, "outstanding": outstanding, "lost": lost, "unchecked": unchecked})

    def outstanding_in(self, queue: str) -> int:
        return len(self._outstanding.get(queue, ()))
