"""What `amqp-lab serve` hands its pages: a read-only lab, settings through the environment, a token off the
loopback."""

from __future__ import annotations

from amqp_lab.cli import main
from amqp_lab.config import build
from amqp_lab.serving import is_loopback, lab_command, prepare

SETTINGS = build(
    {
        "amqp_url": "amqp://ops:s3cr%2Ft@rabbit.example:5672/prod",
        "management_url": "https://ops:s3cr%2Ft@rabbit.example/",
    }
)


def test_loopback_addresses_need_no_token_and_any_other_gets_one() -> None:
    assert all(is_loopback(host) for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"))
    assert not any(is_loopback(host) for host in ("0.0.0.0", "::", "192.168.1.20", "lab.example"))
    assert prepare(SETTINGS, "127.0.0.1", None)[1] is None
    assert prepare(SETTINGS, "127.0.0.1", "given")[1] == "given"  # asked for, it is checked on loopback too
    token = prepare(SETTINGS, "0.0.0.0", None)[1]
    assert token is not None and len(token) >= 20 and token != prepare(SETTINGS, "0.0.0.0", None)[1]


def test_a_served_lab_is_read_only_and_its_password_is_never_on_a_command_line() -> None:
    environment, _ = prepare(SETTINGS, "127.0.0.1", None)
    assert environment["AMQP_LAB_READ_ONLY"] == "true"  # whatever the server's own settings said
    assert build({"amqp_url": environment["AMQP_URL"]}).primary == SETTINGS.primary  # the same broker, password too
    for watch in (None, "ab12cd"):
        command = lab_command(watch)
        assert "s3cr" not in command and "watch --served" in command
    assert lab_command("ab12cd").endswith("ab12cd")


def test_a_port_out_of_range_is_refused_before_anything_listens(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["serve", "--port", "70000"]) == 2
    assert "a port is 1 to 65535" in capsys.readouterr().err
