"""Steering a workshop against the real broker: steps that go on by their own conditions, hold, back a step and
from the start. Client-side behaviour: run on RabbitMQ 3.10 only (the patterns' broker behaviour is tested on all
three elsewhere)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from amqp_lab.broker.connection import Backoff
from amqp_lab.config import Settings
from amqp_lab.ui.app import AmqpLabApp, make_app
from amqp_lab.ui.screens.run import LiveRunScreen
from amqp_lab.ui.widgets.clients_table import ClientsTable
from amqp_lab.workshop import EXPERIMENTS, After, Experiment, Grown, experiment, figure
from rabbitmq_node import VERSIONS
from textual.widgets import Static

from tests.conftest import shown_text, wait_for
from tests.engine.conftest import nothing_left

SIZE = (140, 40)
QUICK = 3.0  # seconds: a step that waits for time waits this long here; counted conditions wait for their count


@pytest.fixture(autouse=True)
def on_rabbitmq_310(rabbit) -> None:  # type: ignore[no-untyped-def]
    if rabbit.version != VERSIONS[0]:
        pytest.skip("the workshop's steering is the client's; its broker behaviour is tested on every broker")


def quick(found: Experiment) -> Experiment:
    """The experiment with its timed waits cut to QUICK seconds; its counted conditions as they are."""
    steps = tuple(
        replace(step, advance=After(min(step.advance.seconds, QUICK))) if isinstance(step.advance, After) else step
        for step in found.steps
    )
    return replace(found, steps=steps)


def progress(app: AmqpLabApp) -> str:
    if not isinstance(app.screen, LiveRunScreen):
        return ""
    return shown_text(app.screen.query_one("#workshop-progress"))


def waiting(app: AmqpLabApp) -> str:
    """What the step waits for, as the panel says it (its lines joined)."""
    if not isinstance(app.screen, LiveRunScreen):
        return ""
    return " ".join(shown_text(app.screen.query_one("#workshop-advance")).split())


def at_step(app: AmqpLabApp, number: int, of: int) -> bool:
    return f"step {number} of {of}" in progress(app)


def handler_state(app: AmqpLabApp) -> str | None:
    return app.screen.query_one(ClientsTable).state_of("handler-1")


SELF_RUNNING = [e for e in EXPERIMENTS if e.key != "node-failure"]  # that one waits for a node to stop


@pytest.mark.parametrize("found", SELF_RUNNING, ids=lambda e: e.key)
async def test_an_experiment_runs_to_its_last_step_on_its_conditions_alone(
    found: Experiment, settings: Settings, tmp_path: Path
) -> None:
    app = make_app(settings, backoff=Backoff(0.2, 1.0), experiment=quick(found))
    app.export_dir = tmp_path
    runs: set[str] = set()
    steps = len(found.steps)
    async with app.run_test(size=SIZE) as pilot:
        for number, step in enumerate(found.steps[:-1], start=1):
            await wait_for(lambda: at_step(app, number, steps), timeout=60, what=f"step {number}")  # noqa: B023
            if isinstance(step.advance, Grown):  # the panel says what it waits for, counted as it grows
                label = re.escape(f"next step after {step.advance.by} ")
                await wait_for(  # or met so soon that the step went on at its first look
                    lambda: (
                        re.search(label + r".*: \d+ so far", waiting(app)) is not None  # noqa: B023
                        or at_step(app, number + 1, steps)  # noqa: B023
                    ),
                    what=f"step {number}'s condition shown",
                )
            if app.run_latest is not None:
                runs.add(app.run_latest.run_id)
            seen = 0  # the most of the step's figure seen in this run while it waited

            def moved_on() -> bool:
                nonlocal seen
                if isinstance(step.advance, Grown) and app.run_latest is not None:  # noqa: B023
                    seen = max(seen, figure(app.run_latest, step.advance.name))  # noqa: B023
                return at_step(app, number + 1, steps)  # noqa: B023

            await wait_for(moved_on, timeout=90, what=f"step {number} moving on")
            if isinstance(step.advance, Grown):  # it went on once its figure had grown that much, not before
                assert seen >= step.advance.by
        await wait_for(lambda: "last step" in progress(app), what="the last step")
        await wait_for(lambda: app.run_latest is not None and app.run_latest.state == "running", what="a run")
        assert app.run_latest is not None
        runs.add(app.run_latest.run_id)
        assert waiting(app) == ""  # the last step waits for nobody: the presenter stops the run
        await pilot.press("q")
    for run_id in runs:
        assert await nothing_left(settings, run_id) == []


async def test_a_held_step_waits_for_the_presenter(settings: Settings, tmp_path: Path) -> None:
    app = make_app(settings, backoff=Backoff(0.2, 1.0), experiment=quick(experiment("handler-hangs")))
    app.export_dir = tmp_path
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: "next step in" in waiting(app), what="step 1 counting down")
        await pilot.press("H")
        await wait_for(lambda: "HELD" in waiting(app), what="the hold shown")
        run = app.run_latest
        assert run is not None
        await wait_for(
            lambda: app.run_latest is not None and app.run_latest.elapsed > run.elapsed + 2 * QUICK,
            timeout=30,
            what="the run going on past the step's time",
        )
        assert at_step(app, 1, 3) and "next step now" in waiting(app)  # met, and held
        await pilot.press("H")
        await wait_for(lambda: at_step(app, 2, 3), what="the step going on once let go")
        await wait_for(lambda: handler_state(app) == "hung", what="step 2's action: handler-1 hung")
        run_id = app.run_latest.run_id if app.run_latest else ""
        await pilot.press("q")
    assert await nothing_left(settings, run_id) == []


async def test_back_a_step_and_from_the_start_bring_a_fresh_run_to_that_step(
    settings: Settings, tmp_path: Path
) -> None:
    held = replace(
        experiment("handler-hangs"), steps=tuple(replace(s, advance=None) for s in experiment("handler-hangs").steps)
    )
    app = make_app(settings, backoff=Backoff(0.2, 1.0), experiment=held)
    app.export_dir = tmp_path
    runs: list[str] = []

    def new_run() -> bool:
        latest = app.run_latest
        return latest is not None and latest.state == "running" and latest.run_id not in runs

    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, LiveRunScreen) and handler_state(app) == "running", what="a run")
        runs.append(app.run_latest.run_id)  # type: ignore[union-attr]
        await pilot.press("n")  # handler-1 hangs: requests time out
        await wait_for(lambda: app.run_latest.counters.get("timeouts", 0) > 0, what="timeouts")  # type: ignore[union-attr]
        await pilot.press("n")  # and is restarted: it answers its backlog, too late
        await wait_for(lambda: at_step(app, 3, 3), what="step 3")
        await wait_for(lambda: app.run_latest.counters.get("late_replies", 0) > 0, what="late replies")  # type: ignore[union-attr]

        await pilot.press("b")  # step 2 on a fresh run: the handler hung again, nothing late yet
        await wait_for(new_run, timeout=60, what="a fresh run for step 2")
        runs.append(app.run_latest.run_id)  # type: ignore[union-attr]
        assert at_step(app, 2, 3)
        await wait_for(lambda: handler_state(app) == "hung", what="handler-1 hung on the fresh run")
        assert app.run_latest.counters.get("late_replies", 0) == 0  # type: ignore[union-attr]

        await pilot.press("B")  # the experiment from its first step
        await wait_for(new_run, timeout=60, what="a fresh run for step 1")
        runs.append(app.run_latest.run_id)  # type: ignore[union-attr]
        assert at_step(app, 1, 3)
        await wait_for(lambda: handler_state(app) == "running", what="handler-1 running from the start")
        await pilot.press("b")
        await wait_for(lambda: "the first step" in " ".join(str(n.message) for n in app._notifications), what="told")
        await pilot.press("q")
    assert len(set(runs)) == 3
    for run_id in runs:
        assert await nothing_left(settings, run_id) == []


async def test_node_failure_on_a_single_node_says_so_and_what_it_needs(settings: Settings, tmp_path: Path) -> None:
    app = make_app(settings, backoff=Backoff(0.2, 1.0), experiment=experiment("node-failure"))
    app.export_dir = tmp_path
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: "single node" in waiting(app), timeout=30, what="the single node said")
        said = str(app.screen.query_one("#workshop-advance", Static).content)
        assert "needs a cluster" in said and "rabbitmq_cluster.py start" in said
        assert at_step(app, 1, 3)
        run_id = app.run_latest.run_id if app.run_latest else ""
        await pilot.press("q")
    assert await nothing_left(settings, run_id) == []
