"""The oracle: the lab's figures held against an account it does not keep itself.

Each pattern runs in its reliable and its fast mode, and workers once more with no processing time (a worker then
settles each message as it arrives), all nine at once, each with a client crashed (and restarted a second later)
and another hung (and healed). When the run has drained, and before its clients close, the
broker's own statistics for the run's queues and exchanges are read from the management API, raw, and must give
the lab's figures: what each exchange took in and routed out, what each queue was sent, delivered, acked and
still holds. The clients are still connected then on purpose: RabbitMQ drops the statistics a channel had not
emitted yet when it closes (a closed publisher's last second was missing from publish_in). After the cleanup, the
ledger must balance and have lost nothing. A workers run spread over two processes of its own (`--processes`) is
held to the same figures: its ledger is their reports, replayed in the run's process.

Where the broker cannot give an exact figure, the test says why and checks a bound:
- a delivery to a client that crashed before it saw it is counted by the broker and not by the lab; it went back
  to its queue, so it was delivered again (flagged redelivered) or is still there;
- an exclusive queue (a non-reliable subscriber's) goes with its client, and its statistics with it; the
  exchange's figures cover what reached it. While the broker deletes such a queue, or binds it again after a
  restart, an event published at that moment may reach it although the lab counted it missed, or miss it
  although the lab counted a copy there (discarded with the queue): the broker's publish_out may differ from the
  lab's copies by at most those events;
- the drain may run out on a loaded machine: consumers still connected while the broker is read finish some of
  what it held, so the cleanup finds at most that;
- the crashed client's channel goes with the statistics it had not emitted yet: its last interval of publishes
  (a shard's results, a publisher's events) may be missing from the broker's publish figures, at most all it sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from amqp_lab.engine.run import Run
from amqp_lab.scenario.files import from_text
from rabbitmq_node import PrivateNode

from tests.conftest import busy_factor, settings_for

pytestmark = pytest.mark.embedded

# pattern, mode: the scenario's settings, the client crashed at 1 s for 1 s, the one hung at 1.5 s for 1 s.
# RPC sends a tenth of its requests to a method nobody serves: they reach the exchange and no queue.
SCENARIOS = {
    ("rpc", "reliable"): ("rpc.persistent = true\nrpc.rate = 10\nrpc.unroutable = 0.1", "handler-1", "handler-2"),
    ("rpc", "fast"): ("rpc.rate = 10\nrpc.unroutable = 0.1", "handler-1", "handler-2"),
    ("map-reduce", "reliable"): ('map-reduce.policy = "wait-for-all"', "shard-1", "shard-2"),
    ("map-reduce", "fast"): ('map-reduce.policy = "deadline"', "shard-1", "shard-2"),
    ("workers", "reliable"): ("workers.rate = 20", "worker-1", "worker-2"),
    ("workers", "fast"): ('workers.rate = 20\nworkers.persistent = false\nworkers.publish_mode = "none"', "worker-1",
                          "worker-2"),
    # No processing time: a worker settles each message as it arrives, in aiormq's delivery task, not its loop.
    ("workers", "at once"): ('workers.rate = 20\nworkers.processing = "0ms"', "worker-1", "worker-2"),
    ("pub-sub", "reliable"): ("pub-sub.rate = 10", "orders", "eu-audit"),
    ("pub-sub", "fast"): ("pub-sub.rate = 10\npub-sub.reliable = false", "orders", "eu-audit"),
}  # fmt: skip


def scenario_text(pattern: str, options: str, crashed: str, hung: str) -> str:
    return f"""
preset = "{pattern}"
duration = 4
{options}
[[schedule]]
at = 1
client = "{crashed}"
action = "crash"
for = 1
[[schedule]]
at = 1.5
client = "{hung}"
action = "hang"
for = 1
"""


@dataclass
class BrokerView:
    """The management API's raw figures for a run's objects; absent figures read as None, not 0."""

    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    exchanges: dict[str, dict[str, Any]] = field(default_factory=dict)


def figure(document: dict[str, Any], name: str) -> int | None:
    value = document.get(name, (document.get("message_stats") or {}).get(name))
    return value if isinstance(value, int) else None


async def read_broker(node: PrivateNode, prefix: str) -> BrokerView:
    async with httpx.AsyncClient(base_url=node.management_url, auth=("guest", "guest"), timeout=10) as http:
        queues = (await http.get(f"api/queues/{quote('/', safe='')}")).raise_for_status().json()
        exchanges = (await http.get(f"api/exchanges/{quote('/', safe='')}")).raise_for_status().json()
    return BrokerView(
        {q["name"]: q for q in queues if q["name"].startswith(prefix)},
        {x["name"]: x for x in exchanges if x["name"].startswith(prefix)},
    )


def disagreements(run: Observed, view: BrokerView) -> list[str]:
    """Every figure where the broker and the lab differ, in words; empty when they agree."""
    ledger = run.ctx.ledger
    # RabbitMQ drops what a channel had not emitted when it closes: the crashed client's last interval of
    # deliveries and acks (late on a loaded machine) may be missing from the queue's figures, at most all it
    # received. The crashed client is the scenario's, not found in the run's events: their list is capped.
    crashed = next((c for c in run.snapshot().clients if c.name == run.crashed), None)
    dropped = crashed.received if crashed else 0
    unemitted = crashed.sent if crashed else 0
    topology = run.plan.topology
    found: list[str] = []
    exclusive = {c.own_queue.name for c in run.plan.clients if getattr(c, "own_queue", None) and c.own_queue.exclusive}
    crashed_spec = next((c for c in run.plan.clients if c.name == run.crashed), None)
    crashed_queue = own.name if (own := getattr(crashed_spec, "own_queue", None)) else None
    missed = int(run.snapshot().counters.get("missed", 0))

    def differ(what: str, broker: int | None, lab: int) -> None:
        if broker != lab:
            found.append(f"{what}: broker {broker}, lab {lab}")

    def published(what: str, broker: int, lab: int) -> None:
        if not 0 <= lab - broker <= unemitted:
            found.append(
                f"{what}: broker {broker}, lab {lab} (the broker may miss at most {unemitted}, all the "
                f"crashed client sent)"
            )

    dead_letter_targets = {
        b.destination for q in topology.queues if q.dead_letter_exchange for b in topology.bindings
        if b.source == q.dead_letter_exchange
    }  # fmt: skip
    for exchange in topology.exchanges:
        stats = view.exchanges.get(exchange.name)
        if stats is None:
            found.append(f"exchange {exchange.name}: not listed by the broker")
            continue
        published(f"{exchange.name} publish_in", figure(stats, "publish_in") or 0, ledger.published_to[exchange.name])
        bound = {b.destination for b in ledger.topology.bindings if b.source == exchange.name}
        copies = sum(ledger.routed_to.get(q, 0) for q in bound)
        routed = figure(stats, "publish_out") or 0
        if any(ledger.routed_to.get(q, 0) for q in exclusive):
            # A subscriber's own queue is being deleted, or bound again, while events are published: the broker
            # may route one there that the lab counted missed, or none to a queue it had deleted already where the
            # lab counted a copy, then discarded with the queue. Nothing else may differ.
            # And the crash deleted the crashed subscriber's queue: RabbitMQ drops a deleted queue's statistics
            # not yet collected, so copies routed there in its last statistics interval may be missing (at most
            # all the lab routed there).
            discarded = sum(ledger.discarded_in.get(q, 0) for q in exclusive)
            deleted = ledger.routed_to.get(crashed_queue, 0) if crashed_queue in exclusive else 0
            if not -discarded - unemitted - deleted <= routed - copies <= missed:
                found.append(
                    f"{exchange.name} publish_out: broker {routed}, lab {copies} (- at most {discarded} discarded, "
                    f"{unemitted} unemitted and {deleted} routed to the crashed client's queue, + at most "
                    f"{missed} missed)"
                )
        else:
            published(f"{exchange.name} publish_out (one per queue reached)", routed, copies)
    for queue in topology.queues:
        if queue.exclusive:
            continue  # gone with its client, statistics and all
        stats = view.queues.get(queue.name)
        if stats is None:
            found.append(f"queue {queue.name}: not listed by the broker")
            continue
        differ(f"{queue.name} messages", figure(stats, "messages"), ledger.outstanding_in(queue.name))
        # Every ack the lab's consumers sent: a second answer to a request (its first was published as its handler
        # crashed, so it was answered again) is a duplicate to the ledger and one more ack to the broker.
        acks_unseen = ledger.acks_in[queue.name] - (figure(stats, "ack") or 0)
        if not 0 <= acks_unseen <= dropped:
            differ(f"{queue.name} ack", figure(stats, "ack") or 0, ledger.acks_in[queue.name])
        if queue.name not in dead_letter_targets:  # dead-lettered copies do not come through a channel
            published(f"{queue.name} publish", figure(stats, "publish") or 0, ledger.routed_to.get(queue.name, 0))
        delivered = figure(stats, "deliver_get") or 0
        unseen = delivered - ledger.delivered_in[queue.name]
        again = (figure(stats, "redeliver") or 0) + (figure(stats, "messages") or 0)
        if not -dropped <= unseen <= again:
            found.append(
                f"{queue.name} deliver_get {delivered}, the lab saw {ledger.delivered_in[queue.name]}: "
                f"{unseen} unseen, more than were delivered again or are still queued ({again}), or than the "
                f"crashed client's channel may have taken with it ({dropped})"
            )
    return found


FIGURES = ("publish_in", "publish_out", "publish", "ack", "deliver_get", "redeliver", "messages")


def settled(view: BrokerView) -> dict[tuple[str, str], int | None]:
    """The figures the oracle reads, to tell a view the broker is still updating from one it has finished."""
    documents = {**view.queues, **view.exchanges}
    return {(name, key): figure(doc, key) for name, doc in documents.items() for key in FIGURES}


class Observed(Run):
    """A run that reads the broker's figures once it has drained, before its clients close, until they agree
    with the lab's and hold still over a statistics interval (the management API lags by that interval and more
    on a busy machine; a tolerated shortfall must be one the broker has finished with, not one still coming)."""

    def __init__(self, node: PrivateNode, crashed: str | None, *args: Any) -> None:
        super().__init__(*args)
        self.node = node
        self.crashed = crashed
        self.view = BrokerView()
        self.differences: list[str] = ["not read"]

    async def _drain(self, limit: float) -> None:
        await super()._drain(limit)
        give_up = asyncio.get_running_loop().time() + 20 * busy_factor()
        before: dict[tuple[str, str], int | None] = {}
        while asyncio.get_running_loop().time() < give_up:
            await asyncio.sleep(1.2)  # past the node's 1 s statistics interval
            self.view = await read_broker(self.node, self.prefix)
            self.differences = disagreements(self, self.view)
            if not self.differences and settled(self.view) == before:
                return
            before = settled(self.view)


async def test_every_pattern_in_both_modes_agrees_with_the_broker(rabbit: PrivateNode) -> None:
    settings = settings_for(rabbit)
    runs = {
        key: Observed(rabbit, spec[1], from_text(scenario_text(key[0], *spec), f"{key[0]} {key[1]}"), settings)
        for key, spec in SCENARIOS.items()
    }
    finals = dict(zip(runs, await asyncio.gather(*(run.execute() for run in runs.values())), strict=True))
    report = []
    for key, run in runs.items():
        s = finals[key]
        name = f"{key[0]} {key[1]}"
        report += [f"{name}: {d}" for d in run.differences]
        ledger = s.ledger
        if ledger.copies != ledger.accounted:
            report.append(f"{name}: the ledger does not balance: {ledger}")
        if ledger.lost or ledger.unchecked:
            report.append(f"{name}: lost {ledger.lost}, unchecked {ledger.unchecked}")
        if run.leftovers:
            report.append(f"{name}: left on the broker: {run.leftovers}")
        # What the cleanup found in the queues is at most what the broker held when it was read: the consumers,
        # still connected then, may have finished some since (the drain had run out, on a loaded machine).
        held = sum(figure(q, "messages") or 0 for q in run.view.queues.values() if not q.get("exclusive"))
        if ledger.still_queued > held:
            report.append(f"{name}: still queued {ledger.still_queued}, the broker held {held}")
        if not all(figure(x, "publish_in") for x in run.view.exchanges.values()):
            report.append(f"{name}: an exchange took in nothing: {run.view.exchanges}")
        if not any(e.kind == "crash" for e in s.events):
            report.append(f"{name}: no crash was logged: the faults did not happen")
    assert report == [], "\n".join(report)


async def test_a_run_over_its_own_processes_agrees_with_the_broker(rabbit: PrivateNode) -> None:
    """--processes: the run's ledger is the processes' reports replayed in one place; the broker's own figures
    must give it as they give a run in one process. No fault: the controls reach this machine's clients only."""
    if rabbit.version != "3.10":
        pytest.skip("the processes are the client's: one broker version is enough")
    settings = replace(settings_for(rabbit), processes=2)
    text = 'preset = "workers"\nduration = 4\nworkers.rate = 20\nworkers.producers = 2\nworkers.workers = 2\n'
    run = Observed(rabbit, None, from_text(text, "workers over processes"), settings)
    final = await run.execute()
    assert [a.name for a in final.agents] == [f"process-1-{run.run_id}", f"process-2-{run.run_id}"]
    assert run.differences == []
    ledger = final.ledger
    assert ledger.published > 0 and ledger.copies == ledger.accounted
    assert ledger.lost == ledger.unchecked == 0
