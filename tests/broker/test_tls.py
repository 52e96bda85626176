"""TLS against the broker's amqps and https listeners (RabbitMQ's and the embedded broker's), with a CA made for
the test run.

Verification is on by default: without the CA, or with another CA, the lab says the certificate is not
trusted and how to fix it (--ca-file), and exits 2; with --ca-file it checks, runs a scenario and explores.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from amqp_lab.broker.management import ManagementClient
from amqp_lab.config import build
from rabbitmq_node import PrivateNode

from tests.unit.test_cli import amqp_lab


def tls_args(node: PrivateNode, *extra: str) -> list[str]:
    return ["--url", node.amqps_url, "--management-url", node.https_url, *extra]


pytestmark = pytest.mark.embedded


def test_check_over_tls_with_the_right_ca(rabbit: PrivateNode, certificates: Path) -> None:
    result = amqp_lab("check", *tls_args(rabbit, "--ca-file", str(certificates / "ca.pem")))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("AMQP        ok") and f"amqps://guest:****@127.0.0.1:{rabbit.amqps_port}" in lines[0]
    assert lines[1].startswith("management  ok")


@pytest.mark.parametrize("ca", [None, "other-ca.pem"], ids=["system CAs", "another CA"])
def test_an_untrusted_certificate_is_refused_with_the_fix(rabbit: PrivateNode, certificates: Path, ca: str) -> None:
    extra = ["--ca-file", str(certificates / ca)] if ca else []
    result = amqp_lab("check", *tls_args(rabbit, *extra))
    assert result.returncode == 2
    assert "not trusted" in result.stdout and "--ca-file" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_no_verify_skips_the_check(rabbit: PrivateNode) -> None:
    result = amqp_lab("check", *tls_args(rabbit, "--no-verify"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_scenario_runs_over_amqps(rabbit: PrivateNode, certificates: Path) -> None:
    args = tls_args(rabbit, "--ca-file", str(certificates / "ca.pem"))
    result = amqp_lab("run", "workers", "--duration", "1s", "--set", "workers.rate=30", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cleaned up: nothing of run" in result.stdout


async def test_the_explorer_reads_the_management_api_over_https(rabbit: PrivateNode, certificates: Path) -> None:
    settings = build(
        {"amqp_url": rabbit.amqps_url, "management_url": rabbit.https_url, "ca_file": str(certificates / "ca.pem")}
    )
    async with ManagementClient(settings) as client:
        overview = await client.overview()
        queues, total = await client.queues()
    assert overview.node == rabbit.name
    assert total == len(queues)
