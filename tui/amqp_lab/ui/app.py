"""The Textual app: owns the broker connections and their workers; screens only render."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from amqp_lab.broker.connection import Backoff, ConnectionManager, ConnectionState, ConnectionStatus
from amqp_lab.broker.errors import ManagementUnavailable
from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.poller import BrokerSnapshot, ManagementPoller, Wanted
from amqp_lab.config import Settings, SettingsError
from amqp_lab.engine.recording import Recorder
from amqp_lab.engine.remote import RemoteRun, RunEnded
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.masking import mask_text
from amqp_lab.scenario.controls import Control
from amqp_lab.scenario.model import Scenario
from amqp_lab.ui.screens.builder import BuilderScreen
from amqp_lab.ui.screens.connection import ConnectionScreen
from amqp_lab.ui.screens.help import HelpScreen
from amqp_lab.ui.screens.overview import OverviewScreen
from amqp_lab.ui.screens.run import LiveRunScreen
from amqp_lab.ui.screens.workshop import WorkshopScreen
from amqp_lab.ui.text import printable
from amqp_lab.ui.themes import STYLES, ThemedApp
from amqp_lab.workshop import Experiment

RUN_STOP_TIMEOUT = 60.0  # drain (scenario.drain) and cleanup take seconds; a broker gone silent must not hang quitting
BUILDER = "builder"  # the installed builder screen's name
HELP = "help"


class AmqpLabApp(ThemedApp):
    TITLE = "amqp-lab"
    CSS_PATH = STYLES
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("c", "edit_connection", "Connection"),
        Binding("r", "reconnect", "Reconnect"),
        Binding("t", "toggle_theme", "Theme"),
    ]

    settings: reactive[Settings] = reactive(None, init=False)  # type: ignore[arg-type]
    snapshot: reactive[BrokerSnapshot | None] = reactive(None, init=False)
    amqp_status: reactive[ConnectionStatus | None] = reactive(None, init=False)
    run_ended: reactive[RunEnded | None] = reactive(None, init=False)

    def __init__(
        self,
        settings: Settings,
        backoff: Backoff = Backoff(),
        theme: str = "lab-dark",
        opening: Callable[[AmqpLabApp], None] | None = None,
        presenting: bool = False,
        served: bool = False,
    ) -> None:
        super().__init__(theme)
        self.presenting = presenting  # --present: runs open in projector mode
        self.served = served  # a page of amqp-lab serve: read-only on its broker, for good
        self._opening = opening
        self.backoff = backoff
        self.manager: ConnectionManager | None = None
        self.poller: ManagementPoller | None = None
        self._management: ManagementClient | None = None  # screens make one-off calls with it
        self._wanted = Wanted()  # kept here too: a new connection gets a new poller
        self.set_reactive(AmqpLabApp.settings, settings)
        self.lab_run: RemoteRun | None = None
        self.run_latest: RunSnapshot | None = None  # ten a second from the run's process; screens read it on a timer
        self.export_dir = Path.cwd()
        self._run_running = asyncio.Event()
        self._recorder: Recorder | None = None

    def get_default_screen(self) -> Screen[None]:
        return OverviewScreen()

    def on_load(self) -> None:
        """Connect before the screen is built: the first poll is on its way while Textual composes and lays out
        the explorer (on a broker with thousands of queues, the first page takes most of a second)."""
        self._start()

    async def on_mount(self) -> None:
        if self._opening is not None:
            self._opening(self)

    async def on_unmount(self) -> None:
        await self.end_run()
        await self._stop()

    # -- a scenario run, in its own process ----------------------------------

    @property
    def management(self) -> ManagementClient:
        if self._management is None:
            raise ManagementUnavailable(
                "no management API client: not connected, or its TLS files did not load (c checks the connection)"
            )
        return self._management

    @property
    def run_is_going(self) -> bool:
        return self.lab_run is not None and self.lab_run.ended is None

    def begin_run(self, scenario: Scenario) -> None:
        """Start a run in a child process; its snapshots land in `run_latest`."""
        if self.run_is_going:
            raise RuntimeError("a run is still going; stop it first")
        self.run_latest = None
        self.run_ended = None
        self._run_running.clear()
        self.lab_run = RemoteRun(scenario, self.settings, self._on_run_snapshot, self._on_run_end, until_stopped=False)
        try:
            self.lab_run.start()
        except (OSError, ValueError) as exc:
            self._on_run_end(RunEnded(None, None, (), f"could not start the run's process: {exc}"))

    def _on_run_snapshot(self, snapshot: RunSnapshot) -> None:
        self.run_latest = snapshot
        if self._recorder is not None:
            self._recorder.add(snapshot)
        if snapshot.state == "running":
            self._run_running.set()

    def _on_run_end(self, ended: RunEnded) -> None:
        if ended.snapshot is not None:
            self.run_latest = ended.snapshot
        if self._recorder is not None:
            self._recorder.finish(ended)
            self._recorder = None
        self.run_ended = ended
        self._run_running.set()
        if ended.error:
            self.notify(printable(ended.error), title="The run stopped", severity="error", timeout=15)
        elif ended.report and ended.report.get("cleanup_error"):
            self.notify(
                f"{printable(str(ended.report['cleanup_error']))}.\nMay be left: {', '.join(ended.leftovers)}\n"
                "Run amqp-lab cleanup once the broker is back.",
                title="Not cleaned up",
                severity="error",
                timeout=20,
            )
        elif ended.leftovers:
            self.notify(
                "Left on the broker: " + ", ".join(ended.leftovers) + "\nRun amqp-lab cleanup to remove them.",
                title="Cleanup incomplete",
                severity="error",
                timeout=20,
            )
        else:
            self.notify("Run finished; everything it declared was deleted.", title="Cleaned up")
        if self.screen_stack:  # empty while the app shuts down
            finished = getattr(self.screen, "on_run_finished", None)
            if finished is not None:
                finished()

    @property
    def recording(self) -> Path | None:
        return self._recorder.path if self._recorder is not None else None

    def record(self, on: bool) -> Path | None:
        """Start recording the current run from now (into the export folder), or stop; the file, if started."""
        if not on or self.lab_run is None or self.lab_run.ended is not None:
            if self._recorder is not None:
                self._recorder.close()
                self._recorder = None
            return None
        if self._recorder is None:
            scenario = self.lab_run.scenario
            slug = re.sub(r"[^a-z0-9]+", "-", scenario.title.lower()).strip("-") or "run"
            path = self.export_dir / f"amqp-lab-{slug}-{time.strftime('%Y%m%d-%H%M%S')}.rec.gz"
            self._recorder = Recorder(path, scenario, self.settings.primary.display())
            if self.run_latest is not None:
                self._recorder.add(self.run_latest)
        return self._recorder.path

    async def run_started(self) -> None:
        """Until the current run is running (or ended trying)."""
        await self._run_running.wait()

    def run_control(self, control: Control) -> None:
        if self.lab_run is not None:
            self.lab_run.send(control)

    async def end_run(self) -> None:
        """Stop the current run, if any, and wait for its cleanup."""
        run = self.lab_run
        if run is None:
            return
        run.stop()
        try:
            async with asyncio.timeout(RUN_STOP_TIMEOUT):
                await run.wait()
        except TimeoutError:
            self.notify("The run did not stop in time; amqp-lab cleanup removes what it left.", severity="error")
        self.lab_run = None

    async def action_quit(self) -> None:
        if self.run_is_going:
            self.notify("Stopping the run and cleaning up before quitting…", title="Quitting", timeout=30)
            self.run_worker(self._quit_after_run(), group="quit", exclusive=True)
        else:
            self.exit()

    async def _quit_after_run(self) -> None:
        await self.end_run()
        self.exit()

    # -- connections ---------------------------------------------------------

    def _start(self) -> None:
        """Open both connections for the current settings, each in its own worker."""
        self.manager = ConnectionManager(self.settings, self.backoff)
        self.manager.add_listener(self._on_amqp_status)
        self.run_worker(self.manager.connect(), name="amqp", group="amqp", exclusive=True)
        try:
            self._management = management = ManagementClient(self.settings)
        except SettingsError as exc:  # TLS files that do not load
            self.notify(printable(str(exc)), title="Management API not started", severity="error")
            return
        self.poller = ManagementPoller(management, self.settings.refresh, self._on_snapshot)
        self.poller.wanted = self._wanted
        self.run_worker(self.poller.run(), name="management", group="management", exclusive=True)

    async def _stop(self) -> None:
        self.workers.cancel_group(self, "management")
        self.workers.cancel_group(self, "amqp")
        if self.manager is not None:
            await self.manager.close()
        if self._management is not None:
            await self._management.aclose()
        self.manager = self.poller = self._management = None

    async def switch_settings(self, settings: Settings) -> None:
        await self._stop()
        self.snapshot = None
        self.amqp_status = None
        self.settings = settings
        self._start()

    def _on_amqp_status(self, status: ConnectionStatus) -> None:
        previous = self.amqp_status
        self.amqp_status = status
        # One toast per transition, not per reconnect attempt.
        if previous is not None and previous.state is status.state:
            return
        if status.state is ConnectionState.CONNECTED and previous is not None:
            self.notify(f"AMQP connected to {status.endpoint}", title="Connected")
        elif status.state is ConnectionState.RECONNECTING:
            self.notify(printable(status.reason or ""), title="Connection lost", severity="warning")
        elif status.state is ConnectionState.FAILED:
            self.notify(
                printable(status.reason or "") + "\nPress r to retry or c to edit the connection.",
                title="Cannot connect",
                severity="error",
                timeout=10,
            )

    def _on_snapshot(self, snapshot: BrokerSnapshot) -> None:
        previous = self.snapshot
        self.snapshot = snapshot
        was_ok = previous.ok if previous is not None else True
        if was_ok and not snapshot.ok:
            self.notify(printable(str(snapshot.error)), title="Management API unreachable", severity="warning")
        elif not was_ok and snapshot.ok:
            self.notify("Statistics are back.", title="Management API reachable")

    def want(self, **changes: Any) -> None:
        """Change what is polled (fields of Wanted): the queue filter, vhost, sort or the listings on screen."""
        self._wanted = replace(self._wanted, **changes)
        if self.poller is not None:
            self.poller.wanted = self._wanted

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a worker's crash is turned into a notification, never a traceback."""
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            message = mask_text(f"{type(error).__name__}: {error}", self.settings.secrets())
            self.notify(printable(message), title=f"{event.worker.name} stopped", severity="error", timeout=15)

    # -- actions -------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            if not self.is_screen_installed(HELP):  # built once: composing it and laying out its text took most of `?`
                self.install_screen(HelpScreen(), name=HELP)
            self.push_screen(HELP)

    def action_edit_connection(self) -> None:
        if self.served:
            self.notify("A served lab stays read-only on the broker it was served for.", severity="warning")
            return

        async def apply(settings: Settings | None) -> None:
            if settings is not None:
                await self.switch_settings(settings)

        self.push_screen(ConnectionScreen(self.settings), apply)

    async def action_reconnect(self) -> None:
        if self.poller is not None:
            self.poller.refresh_now()
        if self.manager is not None and self.manager.status.state is not ConnectionState.CONNECTED:
            self.run_worker(self.manager.retry(), name="amqp", group="amqp", exclusive=True)

    def _refuse_while_running(self) -> bool:
        if self.run_is_going:
            self.notify("A run is going: stop it with s first.", severity="warning")
        return self.run_is_going

    def action_watch(self, run_id: str = "") -> None:
        from amqp_lab.ui.screens.watch import WatchingScreen

        self.push_screen(WatchingScreen(run_id or None))

    def action_builder(self, source: str | None = None) -> None:
        """The builder is built once and kept: its five forms take a while to build, and as long to take down,
        which leaving it used to wait for. Coming back finds the options as they were left; a `source` other
        than the one it opened (a file, a preset) opens a new one."""
        if self._refuse_while_running() or isinstance(self.screen, BuilderScreen):
            return
        if self.is_screen_installed(BUILDER):
            kept = self.get_screen(BUILDER)
            if source is not None and isinstance(kept, BuilderScreen) and kept.source != source:
                self.uninstall_screen(BUILDER)
        if not self.is_screen_installed(BUILDER):
            self.install_screen(BuilderScreen(source or "rpc"), name=BUILDER)
        self.push_screen(BUILDER)

    def action_workshop(self) -> None:
        if self._refuse_while_running():
            return

        def chosen(experiment: Experiment | None) -> None:
            if experiment is not None:
                self.start_experiment(experiment)

        self.push_screen(WorkshopScreen(), chosen)

    def open_run(self, scenario: Scenario, experiment: Experiment | None = None) -> None:
        """The live screen on a new run; in read-only mode, a refusal that says why."""
        if self.settings.read_only:
            self.notify(
                "Read-only mode: a run declares queues and publishes. Restart without --read-only to run.",
                title="Cannot run",
                severity="error",
            )
            return
        back_to_workshop = (lambda _: self.action_workshop()) if experiment is not None else None
        self.push_screen(LiveRunScreen(scenario, experiment), back_to_workshop)

    def start_experiment(self, experiment: Experiment) -> None:
        self.open_run(experiment.scenario(), experiment)

    def action_toggle_theme(self) -> None:
        self.theme = "lab-light" if self.theme == "lab-dark" else "lab-dark"

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Connection", "Edit or switch the broker connection", self.action_edit_connection)
        yield SystemCommand("Reconnect", "Reconnect now and refresh the statistics", self.action_reconnect)
        yield SystemCommand("Toggle theme", "Switch between the dark and the light theme", self.action_toggle_theme)
        yield SystemCommand("Help", "What the lab shows and which key does what", self.action_help)
        yield SystemCommand(
            "Build and run a scenario", "RPC, map-reduce, workers, pub-sub or custom", self.action_builder
        )
        yield SystemCommand("Workshop", "Guided experiments, step by step", self.action_workshop)
        if isinstance(screen, LiveRunScreen):
            for binding in screen.BINDINGS:
                if isinstance(binding, Binding) and binding.tooltip:
                    yield SystemCommand(
                        binding.description, binding.tooltip, partial(screen.run_action, binding.action)
                    )
        if isinstance(screen, OverviewScreen):
            yield SystemCommand("Filter queues", "Show only queues whose name contains a text", screen.action_filter)
            yield SystemCommand("Sort queues", "Sort by the next column", screen.action_sort)
            yield SystemCommand("Flip sort order", "Ascending or descending", screen.action_reverse)


def make_app(
    settings: Settings,
    backoff: Backoff = Backoff(),
    theme: str = "lab-dark",
    builder: str | None = None,
    experiment: Experiment | None = None,
    presenting: bool = False,
    watch: str | None = None,
    served: bool = False,
) -> AmqpLabApp:
    """The one way the CLI, the tests and the screenshot script build the app.

    `builder` opens the builder on a preset or file; `experiment` starts a workshop experiment; `presenting` opens
    runs in projector mode; `watch` opens on a live run to watch (a run id, or "" for whichever broadcasts);
    `served` locks the lab read-only on its broker (amqp-lab serve's pages).
    """
    opening: Callable[[AmqpLabApp], None] | None = None
    if builder is not None:
        opening = lambda app: app.action_builder(builder)  # noqa: E731
    elif experiment is not None:
        opening = lambda app: app.start_experiment(experiment)  # noqa: E731
    elif watch is not None:
        opening = lambda app: app.action_watch(watch)  # noqa: E731
    if served:
        settings = replace(settings, read_only=True)
    return AmqpLabApp(settings, backoff=backoff, theme=theme, opening=opening, presenting=presenting, served=served)
