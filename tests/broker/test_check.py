"""`amqp-lab check` against the real node: the first command a workshop attendee runs."""

from __future__ import annotations

import pytest

from tests.unit.test_cli import amqp_lab

pytestmark = pytest.mark.embedded


def test_check_reports_a_reachable_broker(rabbit) -> None:  # type: ignore[no-untyped-def]
    result = amqp_lab("check", "--url", rabbit.amqp_url, "--management-url", rabbit.management_url)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("AMQP        ok") and "amqp://guest:****@127.0.0.1" in lines[0]
    assert lines[1].startswith("management  ok")
    if rabbit.version == "embedded":
        assert lines[2].startswith("broker      amqp-lab embedded broker ")
        assert "node embedded@" in lines[2] and "Erlang" not in lines[2]
    else:
        assert lines[2].startswith("broker      RabbitMQ ")
        assert f"node {rabbit.name}" in lines[2] and " on Erlang " in lines[2]


def test_check_without_management_api_exits_1_and_says_what_is_missing(rabbit) -> None:  # type: ignore[no-untyped-def]
    result = amqp_lab("check", "--url", rabbit.amqp_url, "--management-url", "http://127.0.0.1:1/")
    assert result.returncode == 1
    assert "AMQP        ok" in result.stdout
    assert "management  FAILED  nothing answers at http://127.0.0.1:1/" in result.stdout
    assert "the lab works without it" in result.stdout


def test_check_with_wrong_credentials_exits_2(rabbit) -> None:  # type: ignore[no-untyped-def]
    url = rabbit.amqp_url.replace("guest:guest", "guest:letmein")
    result = amqp_lab("check", "--url", url, "--management-url", rabbit.management_url)
    assert result.returncode == 2
    assert "ACCESS_REFUSED" in result.stdout
    assert "letmein" not in result.stdout + result.stderr


def test_the_debug_log_never_holds_the_password(rabbit, tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "lab.log"
    url = f"amqp://guest:letmein-2@127.0.0.1:{rabbit.amqp_port}/,amqp://guest:letmein-2@127.0.0.1:1/"
    result = amqp_lab("check", "--management-url", rabbit.management_url, "--log-file", str(log), env={"AMQP_URL": url})
    assert result.returncode == 2
    text = log.read_text()
    assert "127.0.0.1:1" in text  # the log did record the failed connects
    assert "letmein-2" not in text + result.stdout + result.stderr
