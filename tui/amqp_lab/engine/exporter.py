"""--metrics-port: the current run's figures for Prometheus, read from its latest snapshot at each scrape.

prometheus-client serves the endpoint from its own thread and writes the text format; this module only says what
each figure is. Names follow Prometheus' conventions: an `amqp_lab_` prefix, `_total` on counters, base units
(seconds), and the run id as a label, so two runs never mix. A figure the run has no sample of is left out, not
reported as zero. After the run ends the endpoint keeps serving its last snapshot, the figures of its report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from threading import Thread
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from amqp_lab.engine.ledger import MEANINGS
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.figures import COUNTS, Count

PREFIX: Final = "amqp_lab"
# The ledger's figures that only grow are counters; the rest (where copies are now) are gauges.
LEDGER_GAUGES = frozenset({"still_queued", "outstanding", "lost", "unchecked", "kept", "read"})
QUANTILES = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"), ("1", "max"))


class RunCollector(Collector):
    """Metric families of the run `latest()` returns, made at each scrape."""

    def __init__(self, latest: Callable[[], RunSnapshot | None]) -> None:
        self._latest = latest

    def collect(self) -> Iterator[Metric]:
        s = self._latest()
        if s is None:
            return
        run = {"run": s.run_id}
        info = GaugeMetricFamily(
            f"{PREFIX}_run_info",
            "The run: 1, with its title, pattern and state",
            labels=[*run, "title", "pattern", "state"],
        )
        info.add_metric([s.run_id, s.title, s.pattern, s.state], 1)
        yield info
        yield _one(GaugeMetricFamily, "run_elapsed_seconds", "Seconds since the run started", run, s.elapsed)
        for name, value in s.ledger.as_dict().items():
            kind = GaugeMetricFamily if name in LEDGER_GAUGES else CounterMetricFamily
            meaning = MEANINGS.get(name, name.replace("_", " "))
            yield _one(kind, f"messages_{name}", f"Messages {meaning} (the lab's ledger)", run, value)
        for count, value in s.counters.items():
            label = COUNTS[Count(count)].label if count in COUNTS else count
            yield _one(CounterMetricFamily, count, f"The run's count of {label}", run, value)
        rates = GaugeMetricFamily(
            f"{PREFIX}_rate_messages_per_second", "Messages a second over the last second", labels=[*run, "flow"]
        )
        for flow, per_second in s.rates.items():
            rates.add_metric([s.run_id, flow], per_second)
        yield rates
        yield from _latency(s)
        yield from _clients(s)
        yield from _queues(s)


def _one(
    kind: type[GaugeMetricFamily | CounterMetricFamily],
    name: str,
    documentation: str,
    labels: dict[str, str],
    value: float,
) -> Metric:
    """A family of one sample: a run-wide figure."""
    family = kind(f"{PREFIX}_{name}", documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def _latency(s: RunSnapshot) -> Iterator[Metric]:
    """Latency since the start as a summary: quantiles and a count (the lab keeps no sum). A measure with no
    sample yet has no quantiles: an unmeasured latency is not a zero."""
    summary = Metric(f"{PREFIX}_latency_seconds", "Latency since the run started, by measure", "summary")
    for measure, p in s.latency_total.items():
        if not p.count:
            continue
        for quantile, field in QUANTILES:
            labels = {"run": s.run_id, "measure": measure, "quantile": quantile}
            summary.add_sample(f"{PREFIX}_latency_seconds", labels, getattr(p, field) / 1000)
        summary.add_sample(f"{PREFIX}_latency_seconds_count", {"run": s.run_id, "measure": measure}, p.count)
    yield summary


def _clients(s: RunSnapshot) -> Iterator[Metric]:
    labels = ["run", "client", "role"]
    sent = CounterMetricFamily(f"{PREFIX}_client_messages_sent", "Messages a simulated client sent", labels=labels)
    received = CounterMetricFamily(
        f"{PREFIX}_client_messages_received", "Messages a simulated client received", labels=labels
    )
    unacked = GaugeMetricFamily(
        f"{PREFIX}_client_unacked_messages",
        "Messages a client holds unacknowledged (or awaits answers to)",
        labels=labels,
    )
    up = GaugeMetricFamily(f"{PREFIX}_client_up", "1 while a client runs, 0 when crashed, hung, failed", labels=labels)
    for c in s.clients:
        values = [s.run_id, c.name, c.role]
        sent.add_metric(values, c.sent)
        received.add_metric(values, c.received)
        unacked.add_metric(values, c.unacked)
        up.add_metric(values, 1 if c.state in ("running", "slow", "done sending") else 0)
    yield from (sent, received, unacked, up)


def _queues(s: RunSnapshot) -> Iterator[Metric]:
    labels = ["run", "queue"]
    ready = GaugeMetricFamily(
        f"{PREFIX}_queue_messages_ready",
        "Messages ready in a queue (the broker's count, about once a second)",
        labels=labels,
    )
    unacked = GaugeMetricFamily(
        f"{PREFIX}_queue_messages_unacked", "Messages of a queue the lab's consumers hold unacknowledged", labels=labels
    )
    consumers = GaugeMetricFamily(f"{PREFIX}_queue_consumers", "Consumers of a queue", labels=labels)
    if s.depths_sampled_at is not None:  # before the first passive declare there is no depth to report
        for q in s.queues:
            ready.add_metric([s.run_id, q.name], q.ready)
            unacked.add_metric([s.run_id, q.name], q.unacked)
            consumers.add_metric([s.run_id, q.name], q.consumers)
    yield from (ready, unacked, consumers)


class MetricsEndpoint:
    """The HTTP endpoint, on loopback unless told otherwise; `close` stops it."""

    def __init__(self, port: int, latest: Callable[[], RunSnapshot | None], address: str = "127.0.0.1") -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(RunCollector(latest))
        self._server: WSGIServer
        self._thread: Thread
        self._server, self._thread = start_http_server(port, addr=address, registry=registry)
        self.port = self._server.server_port
        self.url = f"http://{address}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
