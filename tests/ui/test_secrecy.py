"""No password in any output of a full run: stdout, stderr, the JSON report, the debug log, error messages,
the TUI's screens, its exported report and screenshot."""

from __future__ import annotations

import asyncio
import base64
import gzip
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from amqp_lab.config import Settings, build
from amqp_lab.scenario.files import load
from amqp_lab.ui.app import make_app
from amqp_lab.ui.screens.connection import ConnectionScreen
from amqp_lab.ui.screens.run import LiveRunScreen
from rabbitmq_node import PrivateNode

from tests.conftest import wait_for
from tests.unit.test_cli import amqp_lab

USER = "lab-secrecy"
PASSWORD = "zq7-Secret_pw-91"  # URL-safe, so it appears verbatim in the URL a user types


def forms(password: str) -> list[str]:
    """Every way the password could leak: as typed, URL-encoded, or in a Basic auth header."""
    return [password, quote(password, safe=""), base64.b64encode(f"{USER}:{password}".encode()).decode()]


@pytest.fixture
def secret_user(rabbit: PrivateNode) -> Iterator[str]:
    """A user with its own password and full rights on /, removed afterwards; yields its AMQP URL."""
    with httpx.Client(base_url=rabbit.management_url, auth=("guest", "guest")) as admin:
        admin.put(f"api/users/{USER}", json={"password": PASSWORD, "tags": "administrator"}).raise_for_status()
        admin.put(
            f"api/permissions/%2F/{USER}", json={"configure": ".*", "write": ".*", "read": ".*"}
        ).raise_for_status()
        try:
            yield rabbit.amqp_url.replace("guest:guest", f"{USER}:{PASSWORD}")
        finally:
            admin.delete(f"api/users/{USER}")


def assert_no_secret(where: str, text: str) -> None:
    for form in forms(PASSWORD):
        assert form not in text, f"the password shows in {where}"


def test_no_cli_output_holds_the_password(rabbit: PrivateNode, secret_user: str, tmp_path: Path) -> None:
    report, log = tmp_path / "report.json", tmp_path / "lab.log"
    env = {"AMQP_URL": secret_user, "AMQP_LAB_MANAGEMENT_URL": rabbit.management_url}
    run = amqp_lab("run", "workers", "--duration", "1s", "--json", str(report), "--log-file", str(log), env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    check = amqp_lab("check", env=env)
    refused_vhost = amqp_lab("run", "workers", "--duration", "1s", "--vhost", "no-such-vhost", env=env)
    assert refused_vhost.returncode == 2 and "no-such-vhost" in refused_vhost.stdout + refused_vhost.stderr
    wrong_port = amqp_lab("check", env={"AMQP_URL": secret_user.replace(str(rabbit.amqp_port), "1")})
    outputs = {
        "run stdout": run.stdout,
        "run stderr": run.stderr,
        "the JSON report": report.read_text(),
        "the debug log": log.read_text(),
        "check": check.stdout + check.stderr,
        "a refused vhost": refused_vhost.stdout + refused_vhost.stderr,
        "an unreachable broker": wrong_port.stdout + wrong_port.stderr,
    }
    assert USER in outputs["the JSON report"] or USER in outputs["check"]  # the user is shown, its password never
    for where, text in outputs.items():
        assert_no_secret(where, text)


async def test_no_screen_or_export_of_the_lab_holds_the_password(
    rabbit: PrivateNode, secret_user: str, tmp_path: Path
) -> None:
    settings: Settings = build({"amqp_url": secret_user, "management_url": rabbit.management_url, "refresh": 1})
    app = make_app(settings)
    app.export_dir = tmp_path
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(lambda: app.snapshot is not None and app.snapshot.ok, what="the explorer")
        for tab in "12345":
            await pilot.press(tab)
            await pilot.pause()
            assert_no_secret(f"tab {tab}", app.export_screenshot())
        await pilot.press("c")
        await wait_for(lambda: isinstance(app.screen, ConnectionScreen), what="the connection screen")
        shown = app.export_screenshot()
        assert USER in shown  # the screen does show the connection: its user, never its password
        assert_no_secret("the connection screen", shown)
        await pilot.press("escape")
        await app.push_screen(LiveRunScreen(load("workers", ["duration=30s"])))
        await wait_for(lambda: app.run_latest is not None and app.run_latest.elapsed > 2, what="the run")
        assert_no_secret("the live run screen", app.export_screenshot())
        await pilot.press("e")
        await wait_for(lambda: len(list(tmp_path.iterdir())) >= 2, what="the export")
        await pilot.press("R")  # a recording of the run: its header names the broker
        await wait_for(lambda: len(list(tmp_path.glob("*.rec.gz"))) == 1, what="the recording")
        await app.end_run()
    for exported in await asyncio.to_thread(lambda: list(tmp_path.iterdir())):
        read = partial(gzip.decompress, exported.read_bytes()) if exported.suffix == ".gz" else exported.read_bytes
        assert_no_secret(exported.name, (await asyncio.to_thread(read)).decode())
