"""`amqp-lab serve` in a real browser: Debian's chromium, headless, driven by playwright (never a downloaded
browser). Two visitors follow a run started elsewhere on the broker, and neither can change anything.

The page draws the terminal on a canvas; to read what it shows, the test exposes the page's terminal object as
it loads (textual-serve's own script, with one assignment added on the way) and reads its screen buffer.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from amqp_lab.config import Settings
from amqp_lab.engine.run import Run
from amqp_lab.scenario.files import load
from rabbitmq_node import VERSIONS, free_ports

from tests.conftest import wait_for
from tests.engine.conftest import nothing_left

CHROMIUM = Path("/usr/bin/chromium")
# As the machine's notes say: without the background-networking flags, chromium's own connections are refused
# by the closed network, many at a time.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START = "t=new w(e,{ping:r});"  # where textual-serve's script makes the page's terminal


@pytest.fixture(autouse=True)
def on_rabbitmq_310(rabbit: Any) -> None:
    if rabbit.version != VERSIONS[0]:
        pytest.skip("serving is the lab's own; the broker behaviour under it is tested on every broker")


@pytest.fixture
def served(rabbit: Any, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """amqp-lab serve on a free loopback port, asking for a token: (page URL without the token, the token)."""
    port, token = free_ports(1)[0], secrets.token_urlsafe(12)
    log = (tmp_path / "serve.log").open("wb")
    environment = {**os.environ, "AMQP_URL": rabbit.amqp_url, "AMQP_LAB_MANAGEMENT_URL": rabbit.management_url}
    # --token=: a token may start with "-", which argparse would take for an option
    command = [sys.executable, "-m", "amqp_lab", "serve", "--port", str(port), f"--token={token}"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    try:
        yield f"http://127.0.0.1:{port}/", token
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl+C: every visitor's lab quits, then the server
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError("amqp-lab serve did not stop within 30 s of Ctrl+C") from None
        said = (tmp_path / "serve.log").read_text(errors="replace")
        assert process.returncode == 0 and "Traceback" not in said and "Exception" not in said, said


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if shutil.which(CHROMIUM.name) is None:
        pytest.fail("chromium is not installed: apt-get install chromium (.ci/run does)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


async def visitor(browser: Any, url: str) -> Any:
    """A page of its own (a context apiece: two visitors share nothing), its terminal within reach."""
    context = await browser.new_context(viewport={"width": 1500, "height": 900})

    async def expose_terminal(route: Any) -> None:
        response = await route.fetch()
        script = await response.text()
        assert START in script, "textual-serve's script changed: find where it makes its terminal"
        await route.fulfill(response=response, body=script.replace(START, START + "window.labTerminal=t;"))

    await context.route(re.compile(r".*/static/js/textual\.js$"), expose_terminal)
    page = await context.new_page()
    await page.goto(url)
    await page.click("#terminal")  # keys go where the focus is: the terminal, as a visitor's click puts it
    return page


async def screen(page: Any) -> str:
    return str(
        await page.evaluate(
            """() => {
                const terminal = window.labTerminal && window.labTerminal.terminal;
                if (!terminal) return "";
                const buffer = terminal.buffer.active, lines = [];
                for (let y = 0; y < terminal.rows; y++) {
                    const line = buffer.getLine(buffer.viewportY + y);
                    lines.push(line ? line.translateToString(true) : "");
                }
                return lines.join("\\n");
            }"""
        )
    )


def published(shown: str) -> int | None:
    found = re.search(r"published ([\d,]+)", shown)
    return int(found.group(1).replace(",", "")) if found else None


async def test_two_browsers_follow_a_live_run_and_neither_can_change_anything(
    settings: Settings, served: tuple[str, str], browser: Any
) -> None:
    url, token = served

    async def answers() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(url)).status_code == 403  # no token: no page
        except httpx.TransportError:
            return False

    await wait_for(answers, timeout=30, what="amqp-lab serve answering, and refusing a page without the token")
    pages = [await visitor(browser, f"{url}?token={token}") for _ in range(2)]
    for page in pages:
        await wait_for(
            lambda page=page: screen(page),
            timeout=60,
            what="the page's lab drawn",  # type: ignore[misc]
        )

    last: dict[int, str] = {}  # what each page showed last: a failure says what was on it

    async def shows(page: Any, text: str) -> bool:
        last[id(page)] = await screen(page)
        return text in last[id(page)]

    def on_screen() -> str:
        return "\n\n".join(last.values())

    for page in pages:
        await wait_for(lambda page=page: shows(page, "Watching"), timeout=60, what="the lab waiting for a run")

    run = Run(load("workers", ["duration='60s'", "workers.rate=20"]), settings)
    await run.start()
    try:
        seen: list[set[int]] = [set(), set()]

        async def following() -> bool:  # each page shows the run's published count, and it grows
            for index, page in enumerate(pages):
                shown = await screen(page)
                if f"run {run.run_id}" in shown and (count := published(shown)) is not None:
                    seen[index].add(count)
            return all(len(counts) >= 3 for counts in seen)

        await wait_for(following, timeout=60, what="both pages following the run's figures as they change")
        assert all(max(counts) <= run.ctx.ledger.counts().published for counts in seen)  # never ahead of the run

        first = pages[0]
        for key in ("x", "s", "Space", "a"):  # crash, stop, pause, add: each refused, none done
            await first.keyboard.press(key)
        await wait_for(lambda: shows(first, "Watching only"), what="the controls refused, saying why")
        assert run.state == "running"
        assert run.last is not None and all(client.state == "running" for client in run.last.clients)
        assert len(run.last.clients) == len(run.plan.clients)  # nothing added

        await first.keyboard.press("Escape")  # to the broker explorer: read-only, locked
        await wait_for(lambda: shows(first, "Watch a run"), what="the explorer", explain=on_screen)
        assert await shows(first, "READ-ONLY")
        await first.keyboard.press("c")
        await wait_for(
            lambda: shows(first, "A served lab stays"), what="the connection form refused", explain=on_screen
        )
        await first.keyboard.press("b")  # a scenario can be built and read, not run
        await wait_for(lambda: shows(first, "ctrl+r"), what="the builder", explain=on_screen)
        await first.keyboard.press("Control+r")
        await wait_for(
            lambda: shows(first, "Read-only mode: a run declares"), what="the run refused", explain=on_screen
        )
        assert run.state == "running"
    finally:
        await run.stop()
    await wait_for(lambda: shows(pages[1], "FINISHED"), timeout=30, what="the second page showing the run's end")
    assert await nothing_left(settings, run.run_id) == []


async def test_a_page_without_the_token_is_refused(served: tuple[str, str]) -> None:
    url, token = served

    async def status(address: str) -> int | None:
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(address)).status_code
        except httpx.TransportError:
            return None

    await wait_for(lambda: status(url), timeout=30, what="amqp-lab serve answering")
    assert await status(url) == 403
    assert await status(f"{url}?token=wrong{token}") == 403
    assert await status(f"{url}ws") == 403  # the socket that would start a lab, too
    assert await status(f"{url}?token={token}") == 200
