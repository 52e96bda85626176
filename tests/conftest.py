"""Shared fixtures: a private RabbitMQ node for the whole run, and settings that point at it."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from amqp_lab.config import Settings, build
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from textual.geometry import Region

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import embedded_node
import rabbitmq_cluster
import rabbitmq_node

# Hypothesis judges by wall time: a loaded laptop stalls a draw for a second and fails a property that holds. The
# properties are about inputs, not speed (the bench measures speed), so no deadline and no slowness check.
hypothesis_settings.register_profile("lab", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("lab")

BROKERS = (*rabbitmq_node.VERSIONS, embedded_node.VERSION)

# A suite started in the background (`pytest &` in a script, nohup) inherits SIGINT ignored, and so would every
# broker and run it starts: deaf to the Ctrl-C the tests send them. The tests are about Ctrl-C, not the shell.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _unavailable(version: str) -> str | None:
    """Why a RabbitMQ version cannot run here, or None when it can."""
    if rabbitmq_node.installed(version):
        return None
    if version == "3.10":
        return "rabbitmq-server is not installed: apt-get install -y rabbitmq-server"
    if rabbitmq_node.can_build_chroot():
        return None  # built on first use, about a minute
    return f"no RabbitMQ 4.0 chroot at {rabbitmq_node.CHROOT} and no debootstrap to build it"


def pytest_report_header() -> list[str]:
    lines = []
    for version in rabbitmq_node.VERSIONS:
        reason = _unavailable(version)
        lines.append(f"RabbitMQ {version}: " + (f"SKIPPED, {reason}" if reason else "a private node"))
    lines.append("embedded broker: its own process, for the tests marked embedded")
    lines.append("cluster: three private RabbitMQ 3.10 nodes, for the tests in tests/cluster")
    return lines


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests run on the embedded broker only where marked: the rest use what only RabbitMQ has. Each broker's tests
    form one group (two for the first version), so pytest-xdist runs them on one worker, and each worker starts only
    the broker it needs."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        broker = callspec.params.get("rabbit") if callspec is not None else None
        if broker == embedded_node.VERSION and item.get_closest_marker("embedded") is None:
            dropped.append(item)
            continue
        if broker is not None:
            item.add_marker(pytest.mark.xdist_group(_group(str(broker), item)))
        elif "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("cluster"))
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _group(broker: str, item: pytest.Item) -> str:
    """The first RabbitMQ version's screen tests form a group of their own, on a node of their own: they are as
    long as its engine and broker tests, and the two halves run side by side."""
    if broker == rabbitmq_node.VERSIONS[0] and item.path.parent.name == "ui":
        return f"{broker}-ui"
    return broker


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test CA, a server certificate it signed for 127.0.0.1 and localhost, and another CA that signed nothing."""
    folder = tmp_path_factory.mktemp("tls")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=amqp-lab test {ca}",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=folder)  # fmt: skip
    (folder / "server.ext").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=folder)  # fmt: skip
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "server.ext", "-out", "server.pem", cwd=folder)  # fmt: skip
    return folder


@pytest.fixture(scope="session", params=BROKERS, ids=lambda v: v if v == embedded_node.VERSION else f"rabbitmq-{v}")
def rabbit(request: pytest.FixtureRequest, certificates: Path) -> Iterator[Any]:
    """A private node of each RabbitMQ version (own name, folder, ports, epmd, amqps and https with the test CA's
    certificate), and the embedded broker in its own process; stopped at the end."""
    version: str = request.param
    if version == embedded_node.VERSION:
        embedded = embedded_node.start(tls=_server_files(certificates))
        try:
            yield embedded
        finally:
            embedded_node.stop(embedded)
        return
    _require(version, f"the broker tests on RabbitMQ {version}")
    name = f"amqplab-test-{version.replace('.', '')}-{os.getpid()}@localhost"
    node = rabbitmq_node.start(name, version, tls=_server_files(certificates))
    try:
        yield node
    finally:
        rabbitmq_node.stop(node)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Three private RabbitMQ 3.10 nodes joined into one cluster (scripts/rabbitmq_cluster.py); stopped after the
    module that uses them, so they do not load the machine while the other brokers' tests go on."""
    _require("3.10", "the cluster tests")
    started = rabbitmq_cluster.start(prefix=f"amqplab-cluster-{os.getpid()}")
    try:
        yield started
    finally:
        rabbitmq_cluster.stop(started)


@pytest.fixture(scope="module")
def five_second_samples() -> Iterator[Any]:
    """A private RabbitMQ 3.10 node keeping the management plugin's samples of 5 s, as a broker installed with
    defaults does (the other nodes keep samples of 1 s): its counters step every 5 s, and the rates it reports
    read 0 between steps. Stopped after the module that uses it."""
    _require("3.10", "the tests on a node with RabbitMQ's default samples")
    node = rabbitmq_node.start(f"amqplab-samples-{os.getpid()}@localhost", one_second_samples=False)
    try:
        yield node
    finally:
        rabbitmq_node.stop(node)


def _require(version: str, tests: str) -> None:
    """Skip `tests` where RabbitMQ `version` cannot run; in CI, where it must, fail instead."""
    reason = _unavailable(version)
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run {tests}, but {reason}")
        pytest.skip(f"SKIPPED {tests}: {reason}")


def _server_files(certificates: Path) -> Path:
    """Only what the node needs: the CA, its certificate and key (not the CA's key)."""
    folder = certificates / "server"
    if not folder.exists():
        folder.mkdir()
        for name in ("ca.pem", "server.pem", "server.key"):
            shutil.copy(certificates / name, folder / name)
    return folder


def settings_for(node: Any, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "amqp_url": node.amqp_url,
        "management_url": node.management_url,
        "refresh": 1.0,
        "timeout": 5.0,
    }
    values.update(overrides)
    return build(values)


@pytest.fixture
def settings(rabbit: Any) -> Settings:
    return settings_for(rabbit)


MOST_BUSY = 3.0  # deadlines stretch up to this many times on a machine busy with other work


def busy_factor() -> float:
    """How much longer things take now than on an idle machine, as the load per core says (1 to MOST_BUSY): a
    user runs the suite on a laptop doing other things, and the suite itself loads a two-core machine."""
    return min(max(os.getloadavg()[0] / (os.cpu_count() or 1), 1.0), MOST_BUSY)


def deadline(seconds: float) -> float:
    """A deadline for something to happen, stretched as busy_factor() says."""
    return seconds * busy_factor()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Each test's timeout (pytest-timeout's, a safety net, not a measure) stretches with the machine's load."""
    marker = item.get_closest_marker("timeout")
    base = float(marker.args[0]) if marker is not None and marker.args else float(item.config.getini("timeout"))
    item.add_marker(pytest.mark.timeout(base * busy_factor()), append=False)
    yield


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout: float = 30.0,
    what: str = "condition",
    explain: Callable[[], str] | None = None,
) -> None:
    """Poll a condition until it holds; fail with `what` after `timeout` seconds, stretched on a busy machine.
    `explain` says, in the failure, what the state was then (so a failure in CI can be read without a rerun)."""
    factor = busy_factor()
    give_up = time.monotonic() + timeout * factor
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > give_up:
            stretched = f" (x{factor:.1f} for the machine's load)" if factor > 1 else ""
            state = f"; {explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout * factor:g} s{stretched} waiting for {what}{state}")
        await asyncio.sleep(0.05)


def shown_text(widget: Any) -> str:
    """What a widget shows on screen, as plain lines (borders included)."""
    lines = widget.render_lines(Region(0, 0, widget.outer_size.width, widget.outer_size.height))
    return "\n".join(line.text.rstrip() for line in lines)
