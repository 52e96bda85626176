"""The metrics endpoint's names, as Prometheus' conventions and the dashboard expect them: no broker needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from amqp_lab.engine.exporter import RunCollector
from amqp_lab.scenario.figures import COUNTS
from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tests.ui.test_snapshots import FROZEN

DOCS = Path(__file__).parents[2] / "docs"


def served() -> dict[str, str]:
    """Each family the endpoint serves for a run, by name, with its type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(lambda: FROZEN))
    text = generate_latest(registry).decode()
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def test_every_series_the_dashboard_queries_is_served() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"amqp_lab_[a-z_]+", target["expr"])
    }
    # The parser names a counter's family without _total, a summary's without _count.
    names = set(served())
    families = {re.sub(r"_(total|count)$", "", name) for name in queried}
    assert queried and families <= names, families - names


def test_names_follow_prometheus_conventions_and_the_docs_list_them() -> None:
    families = served()
    assert all(name.startswith("amqp_lab_") for name in families)
    assert families["amqp_lab_messages_published"] == "counter"
    assert families["amqp_lab_messages_lost"] == "gauge"
    assert families["amqp_lab_latency_seconds"] == "summary"
    documented = (DOCS / "metrics.md").read_text()
    counters = (DOCS / "scenarios.md").read_text()  # the run's counters: named there, served as amqp_lab_<counter>
    for name in families:
        if name.removeprefix("amqp_lab_") in COUNTS:
            assert "`amqp_lab_<counter>_total`" in documented and f"`{name.removeprefix('amqp_lab_')}`" in counters
            continue
        pattern = re.sub(r"^amqp_lab_messages_\w+$", "amqp_lab_messages_<figure>", name)
        assert name in documented or pattern in documented, name
