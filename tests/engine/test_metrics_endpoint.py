"""--metrics-port: a scrape during a real run parses with Prometheus' own parser, and a scrape after it agrees with
the run's report figure for figure."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from amqp_lab.cli import Latest, main
from amqp_lab.config import Settings
from amqp_lab.engine.exporter import MetricsEndpoint
from amqp_lab.engine.report import build_report
from amqp_lab.engine.run import Run
from amqp_lab.scenario.files import load
from prometheus_client.parser import text_string_to_metric_families
from rabbitmq_node import VERSIONS, PrivateNode

from tests.conftest import wait_for


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample the endpoint serves, by name and labels, as Prometheus' parser reads them."""
    text = httpx.get(url, timeout=5).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def test_a_scrape_during_a_run_parses_and_one_after_agrees_with_the_report(
    rabbit: PrivateNode, settings: Settings
) -> None:
    if rabbit.version != VERSIONS[0]:
        pytest.skip("the client side is under test here: one broker version is enough")
    scenario = load("workers", ["duration=4", "workers.rate=50"])
    run = Run(scenario, settings)
    latest = Latest()
    run.add_listener(latest.take)
    endpoint = MetricsEndpoint(0, latest)
    try:
        assert not [k for k in await asyncio.to_thread(scrape, endpoint.url) if k[0].startswith("amqp_lab")]
        task = asyncio.create_task(run.execute())

        async def published() -> bool:
            samples = await asyncio.to_thread(scrape, endpoint.url)
            key = ("amqp_lab_messages_published_total", frozenset({("run", run.run_id)}))
            return samples.get(key, 0) > 0  # no series before the run's first snapshot

        await wait_for(published, what="a scrape with messages published")
        during = await asyncio.to_thread(scrape, endpoint.url)
        assert value(during, "amqp_lab_run_info", run=run.run_id, title="workers", pattern="workers", state="running")
        final = await task
        after = await asyncio.to_thread(scrape, endpoint.url)
    finally:
        endpoint.close()

    report = build_report(scenario, final, settings.primary.display(), run.leftovers)
    rid = run.run_id
    for name, figure in report["ledger"].items():
        suffix = "" if name in ("still_queued", "outstanding", "lost", "unchecked", "kept", "read") else "_total"
        assert value(after, f"amqp_lab_messages_{name}{suffix}", run=rid) == figure, name
    assert value(during, "amqp_lab_messages_published_total", run=rid) <= report["ledger"]["published"]
    for client in report["clients"]:
        labels = {"run": rid, "client": client["name"], "role": client["role"]}
        assert value(after, "amqp_lab_client_messages_sent_total", **labels) == client["sent"]
        assert value(after, "amqp_lab_client_messages_received_total", **labels) == client["received"]
    delivery = report["latency_ms"]["delivery"]
    assert value(after, "amqp_lab_latency_seconds_count", run=rid, measure="delivery") == delivery["count"]
    p99 = value(after, "amqp_lab_latency_seconds", run=rid, measure="delivery", quantile="0.99")
    assert p99 == pytest.approx(delivery["p99_ms"] / 1000)
    assert value(after, "amqp_lab_run_info", run=rid, title="workers", pattern="workers", state="finished") == 1


def test_a_port_it_cannot_listen_on_is_said_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = MetricsEndpoint(0, Latest())
    try:
        assert main(["run", "workers", "--metrics-port", str(endpoint.port), "--url", "amqp://127.0.0.1:1/"]) == 2
    finally:
        endpoint.close()
    err = capsys.readouterr().err
    assert f"--metrics-port {endpoint.port}: cannot serve metrics there: Address already in use" in err
    assert "Traceback" not in err
