"""The live run: the flow diagram, trends, clients, timeouts and events, redrawn four times a second.

The run itself lives in a child process owned by the app; this screen reads the
newest snapshot on a timer and sends controls. It never sees a message.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Literal

from rich.console import RenderableType
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Digits, Input, Static

from amqp_lab.engine.recording import RecordingError, read
from amqp_lab.engine.remote import RunEnded
from amqp_lab.engine.report import build_report
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.controls import Control, Inject, PauseProducers, ResumeProducers, SetRate, StopRun
from amqp_lab.scenario.figures import COUNTS, OUTAGE_COUNTS, Count, pattern_counts
from amqp_lab.scenario.model import Scenario
from amqp_lab.scenario.patterns import build, run_prefix
from amqp_lab.scenario.plan import PRODUCING, Plan
from amqp_lab.ui.colors import BAD, GOOD, WARN
from amqp_lab.ui.flow import render_flow
from amqp_lab.ui.history import RunHistory, main_latency
from amqp_lab.ui.lab import lab_of
from amqp_lab.ui.screens.compare import CompareScreen
from amqp_lab.ui.text import inert
from amqp_lab.ui.themes import StyleKeepingScreen
from amqp_lab.ui.widgets.clients_table import ClientsTable
from amqp_lab.ui.widgets.event_log import EventLog
from amqp_lab.ui.widgets.fitting_footer import FittingFooter
from amqp_lab.ui.widgets.ledger_panel import ledger_lines
from amqp_lab.ui.widgets.run_header import RunHeader
from amqp_lab.ui.widgets.status_bar import StatusBar
from amqp_lab.ui.widgets.trends import Trends
from amqp_lab.workshop import Experiment, Rerun

RENDER_INTERVAL = 0.25  # one part of the screen per tick: each part once a second
PARTS = range(4)  # the screen's parts, one drawn per tick (and a live control's with every snapshot for a while)
HEADER, CLIENTS, PANELS, TRENDS = PARTS
HURRIED_FOR = 2.0  # seconds: long enough for the run's process to act on the control and say so
HURRIED_INTERVAL = 0.02  # seconds between looks for a snapshot that shows a control's effect
NARROW, SHORT = 110, 36  # below these columns, rows: one column of panels, some folded (see the stylesheet)
WORKSHOP_WIDTH, WORKSHOP_BESIDE = 40, 120  # the workshop's panel, beside the run from that many columns on
WIDE_FLOW = 118  # columns the flow diagram needs to draw each lane on one line
SCALING = {"rpc": "handler", "workers": "worker", "pub-sub": "subscriber", "map-reduce": "shard"}
CONSUMER_ROLES = ("handler", "worker", "subscriber", "shard", "consumer")
# Actions that steer a run going on; once it has ended the footer leaves them out.
LIVE_CONTROLS = frozenset({"pause", "stop", "rate", "scale", "fault", "record"})
# The problems each pattern can show: a "Timeouts" panel on a workers run would promise what cannot happen there.
PROBLEMS_TITLE = {
    "rpc": "Timeouts and returns",
    "map-reduce": "Late and partial jobs",
    "workers": "Redeliveries and hangs",
    "pub-sub": "Missed events and hangs",
    "custom": "Returns and redeliveries",
}


# Projector mode's figures: (widget id, label); the problem's label is the pattern's own (problem_of).
FIGURES = (
    ("published-rate", "published/s"),
    ("acked-rate", "acked/s"),
    ("p99", "p99 ms"),
    ("lost", "lost"),
    ("problem", "problems"),
)
# The figure that says what goes wrong in each pattern, as its problems panel counts it.
PATTERN_PROBLEM: dict[str, Count | str] = {
    "rpc": Count.TIMEOUTS,
    "map-reduce": Count.PENDING_JOBS,
    "pub-sub": Count.MISSED,
    "workers": "redelivered",
    "custom": "redelivered",
}


def problem_of(s: RunSnapshot) -> tuple[str, int]:
    """The pattern's problem figure: its label and value."""
    count = PATTERN_PROBLEM[s.pattern]
    if isinstance(count, Count):
        return COUNTS[count].label, int(s.counters.get(count, 0))
    return "redelivered", s.ledger.redelivered


def emphasised(text: str) -> Text:
    """A step's text with its **bold** and `key` spans drawn bold; nothing else is markup."""
    shown = Text()
    for i, part in enumerate(re.split(r"\*\*|`", text)):
        shown.append(part, style="bold" if i % 2 else "")
    return shown


def producer_rate(plan: Plan) -> float | None:
    """The rate each producer starts with (None: as fast as it can)."""
    return next((spec.rate for spec in plan.clients if isinstance(spec, PRODUCING)), None)


def count_line(text: Text, label: str, value: int | str, alarm: str) -> None:
    """One line of the timeouts panel: dim while nothing happened, `alarm` once something did."""
    shown = f"{value:>8,}" if isinstance(value, int) else value or f"{'none':>8}"
    text.append(f"{label:<18}", style="bold" if value else "dim")
    text.append(f"{shown}\n", style=alarm if value else "dim")


class LiveRunScreen(StyleKeepingScreen[None]):
    SHOWS_RATE_SET = True  # the header says the rate the producers were set to (a replay does not know it)
    BINDINGS = [
        Binding("space", "pause", "Pause", tooltip="Pause or resume every producer"),
        Binding("s", "stop", "Stop", tooltip="Stop the run: drain, then delete what it declared"),
        Binding("P", "present", "Projector", tooltip="Projector mode: the flow and a few figures, large"),
        Binding("plus,equals_sign", "rate(2)", "Rate+", key_display="+", tooltip="Double the producers' rate"),
        Binding("minus", "rate(0.5)", "Rate-", key_display="-", tooltip="Halve the producers' rate"),
        Binding("a", "scale('add')", "Add", tooltip="Add a consumer of the selected client's role"),
        Binding("d", "scale('remove')", "Remove", tooltip="Remove a consumer of the selected client's role"),
        Binding("x", "fault('crash')", "Crash", tooltip="Crash the selected client: its unacked messages return"),
        Binding("h", "fault('hang')", "Hang", tooltip="Hang the selected consumer: it holds its messages"),
        Binding("r", "fault('restart')", "Restart", tooltip="Restart the selected client (heals a hang)"),
        Binding("n,pagedown", "next_step", "Next step", show=False, tooltip="Workshop: go to the next step"),
        Binding("b,pageup", "previous_step", "Back a step", show=False, tooltip="Workshop: back to the step before"),
        Binding("B,home", "restart_experiment", "Restart", show=False, tooltip="Workshop: the experiment again"),
        Binding("H", "hold", "Hold", show=False, tooltip="Workshop: hold this step (no advancing by itself)"),
        Binding("slash", "filter", "Filter", tooltip="Filter the event log"),
        Binding("e", "export", "Export", tooltip="Save the report (JSON) and a screenshot (SVG)"),
        Binding("R", "record", "Record", tooltip="Record the run from now, for amqp-lab replay and compare"),
        Binding("c", "compare", "Compare", tooltip="Workshop: this run beside the one before the rerun"),
        Binding("escape", "leave", "Back", show=False),
    ]

    def __init__(self, scenario: Scenario, experiment: Experiment | None = None) -> None:
        super().__init__()
        self.scenario = scenario
        self.experiment = experiment
        self.step = 0
        self.history = RunHistory()
        self.plan: Plan | None = None
        self.paused = False
        self.rate: float | None = None
        self._rendered: RunSnapshot | None = None
        self._sampled: RunSnapshot | None = None  # the snapshot of the trends' newest point
        self._busy_with_steps = False
        self.held = False  # the presenter holds the step: it does not advance by itself
        # What the step's condition counts from: None counts from the start of the run whose id is _began_run
        # (None: the next run to report).
        self._began: RunSnapshot | None = None
        self._began_run: str | None = None
        self._lines: dict[str, int] = {}  # lines each auto-height panel showed last
        self._tick = 0
        self._drawn: dict[int, RunSnapshot] = {}  # the snapshot each part of the screen shows
        self._hurried: dict[int, float] = {}  # parts drawn on every new snapshot until then (time.monotonic())
        self._hurry_timer: Timer | None = None  # looks for those snapshots between the ticks
        self._new_events = False
        self._theme_before: str | None = None  # the theme to go back to after projector mode
        self.recordings: list[Path] = []  # this screen's runs recorded, oldest first (a workshop's reruns)

    @property
    def latest(self) -> RunSnapshot | None:
        """The newest snapshot of the run this screen shows."""
        return lab_of(self).run_latest

    @property
    def ended(self) -> RunEnded | None:
        """How that run ended, once it has."""
        return lab_of(self).run_ended

    @property
    def broker(self) -> str:
        """The broker the run is on, masked, as its report names it."""
        return lab_of(self).settings.primary.display()

    # -- layout --------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield RunHeader(id="run-header")
        with Horizontal(id="run-body"):
            with Vertical(id="run-main"):
                with Horizontal(id="present"):
                    for key, label in FIGURES:
                        with Vertical(classes="figure"):
                            yield Static(label, id=f"{key}-label", classes="figure-label")
                            yield Digits("-", id=key)
                yield Static(id="flow")
                with Horizontal(id="run-middle"):
                    with Vertical(id="run-left"):
                        yield ClientsTable(id="clients")
                        with Horizontal(id="run-bottom"):
                            yield Static(id="timeouts")
                            yield EventLog(id="event-log")
                    with Vertical(id="run-side"):
                        yield Trends("", id="trends")
                        yield Static(id="ledger")
            if self.experiment is not None:
                with Vertical(id="workshop"):
                    yield Static(self.experiment.title, id="workshop-title")
                    yield Static(id="workshop-step")
                    with Vertical(id="workshop-foot"):
                        yield Static(id="workshop-advance")
                        yield Static(id="workshop-progress")
        yield FittingFooter(compact=True)

    def on_mount(self) -> None:
        self.query_one(StatusBar).follow(self)
        self.query_one("#flow").border_title = "Message flow"
        self.query_one("#trends").border_title = "Trends (last 2 min)"
        self.query_one("#ledger").border_title = "Ledger: every copy followed"
        self.query_one("#timeouts").border_title = PROBLEMS_TITLE[self.scenario.pattern]
        self.query_one("#event-log").border_title = "Events, newest first"
        self.query_one(ClientsTable).border_title = "Clients (↑↓ select, x crash, h hang, r restart)"
        self._begin(self.scenario)
        self.set_interval(RENDER_INTERVAL, self._render_latest)
        self._show_step()
        self.query_one(ClientsTable).focus()
        if lab_of(self).presenting:
            self.action_present()

    def on_screen_resume(self) -> None:
        if self._drawn:  # back from help or a dialog: the parts a newer snapshot came for, at once (not before
            self._draw_parts(set(PARTS))  # the first layout: the flow's drawing depends on its width)

    def on_resize(self, event: events.Resize) -> None:
        width = event.size.width
        stacked = self.experiment is not None and width < WORKSHOP_BESIDE  # the workshop's panel under the run
        beside = WORKSHOP_WIDTH if self.experiment is not None and not stacked else 0
        self.set_class(stacked, "-stacked")
        self.set_class(width - beside < NARROW, "-narrow")
        self.set_class(event.size.height < SHORT, "-short")

    def _begin(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.history = RunHistory()
        self.paused = False
        self._rendered = None
        self._drawn.clear()
        lab_of(self).begin_run(scenario)
        self.refresh_bindings()  # a workshop's rerun: the live controls again
        if self.experiment is not None:  # a workshop keeps each run, to replay or compare them after
            self._start_recording()
        self.query_one(RunHeader).show(("", Text(scenario.title, style="bold")), ("  ", Text("starting…")))

    # -- rendering -----------------------------------------------------------

    def _render_latest(self) -> None:
        """Take the newest snapshot in, and redraw a quarter of the screen: each part once a second, and the
        parts a live control changes with every new snapshot for a while after it (see `_hurry`).

        A frame that redraws everything holds the event loop for tens of milliseconds, and
        longer while the machine is busy with the run; one part per frame keeps every pause short.
        """
        parts = {self._tick % len(PARTS)} | self._hurried_parts()
        self._tick += 1
        self._draw_parts(parts)

    def _hurried_parts(self) -> set[int]:
        now = time.monotonic()
        return {part for part, until in self._hurried.items() if until > now}

    def _render_hurried(self) -> None:
        """Between the ticks, while a control is hurried: its parts as soon as a snapshot shows its effect."""
        parts = self._hurried_parts()
        if not parts and self._hurry_timer is not None:
            self._hurry_timer.stop()
            self._hurry_timer = None
        self._draw_parts(parts)

    def _draw_parts(self, parts: set[int]) -> None:
        snapshot = self.latest
        parts = {part for part in parts if self._drawn.get(part) is not snapshot}
        if snapshot is None or not parts:
            return
        if self.plan is None or self.plan.prefix != run_prefix(snapshot.run_id):
            self.plan = build(self.scenario, run_prefix(snapshot.run_id))
            self.rate = producer_rate(self.plan)
            self.query_one(Trends).prefix = self.plan.prefix
        if snapshot is not self._rendered:
            self._rendered = snapshot
            self._new_events |= self._remember(snapshot)
        if self.app.screen is not self:
            # Under help or a dialog: the trends keep their points, and nothing is drawn that nobody reads (each
            # change redrew the see-through dialog over it, 50 to 250 ms). All of it is drawn as it is shown again.
            if TRENDS in parts:
                self._sample(snapshot)
            return
        for part in parts:
            self._drawn[part] = snapshot
        final = self.ended is not None
        if HEADER in parts or final:
            self._show_header(snapshot)
            self._show_ledger(snapshot)  # with the header, whose figures it repeats: both from one snapshot
            self._show_flow(snapshot)
            if self.has_class("-present"):
                self._show_figures(snapshot)
        if CLIENTS in parts or final:
            self.query_one(ClientsTable).show_clients(snapshot.clients, self.history.stalled)
        if PANELS in parts or final:
            self._show_header(snapshot)
            self._show_ledger(snapshot)
            self._show_timeouts(snapshot)
            self._follow_step(snapshot)
            if self._new_events:
                self._new_events = False
                self.query_one(EventLog).show(self.history.events)
        if TRENDS in parts or final:
            self._sample(snapshot)
            self.query_one(Trends).show(self.history)

    def _remember(self, snapshot: RunSnapshot) -> bool:
        """Take a new snapshot into the history; True when it brought events not seen before."""
        return self.history.add(snapshot)

    def _sample(self, snapshot: RunSnapshot) -> None:
        """Once a second: a point of each trend, from a snapshot not sampled yet (none while none comes)."""
        if snapshot is not self._sampled:
            self._sampled = snapshot
            self.history.sample(snapshot)

    def _show_flow(self, snapshot: RunSnapshot) -> None:
        assert self.plan is not None
        flow = self.query_one("#flow", Static)
        if self.ended is not None:  # depths and rates are the last ones sampled; the queues went since
            flow.border_title = f"Message flow: last sample, at {snapshot.elapsed:.0f} s, before the cleanup"
        else:  # a replay goes back from the end
            flow.border_title = "Message flow"
        drawing, lines = render_flow(self.plan, snapshot, self.history.peak_depth, flow.content_size.width >= WIDE_FLOW)
        self._update("#flow", drawing, lines)

    def _show_figures(self, s: RunSnapshot) -> None:
        """Projector mode's large figures, from the snapshot the header shows."""
        latency = s.latency.get(main_latency(s.pattern))
        p99 = latency.p99 if latency is not None and latency.count else None  # None: nothing timed, not a zero
        problem, problem_value = problem_of(s)
        shown = {
            "published-rate": f"{s.rates.get('published', 0.0):,.0f}",
            "acked-rate": f"{s.rates.get('acked', 0.0):,.0f}",
            "p99": "-" if p99 is None else f"{p99:,.0f}",
            "lost": f"{s.ledger.lost:,}",
            "problem": f"{problem_value:,}",
        }
        for key, value in shown.items():
            self.query_one(f"#{key}", Digits).update(value)
        p99_label = f"p99 {main_latency(s.pattern)} ms" + (" (no sample)" if p99 is None else "")
        self.query_one("#p99-label", Static).update(p99_label)
        self.query_one("#problem-label", Static).update(problem)
        self.query_one("#lost", Digits).set_class(s.ledger.lost > 0, "-bad")

    def action_present(self) -> None:
        """Projector mode on or off, the run going on: the flow and five figures large, in the projector theme."""
        presenting = not self.has_class("-present")
        theme = "lab-projector" if presenting else self._theme_before or self.app.theme
        if presenting:
            self._theme_before = self.app.theme
        # A new theme restyles the whole screen: the class alone would cost one more restyle (80 ms here).
        self.set_class(presenting, "-present", update=theme == self.app.theme)
        self.app.theme = theme
        self._drawn.clear()  # every part again, the figures included
        self.notify("Projector mode: P again for every panel." if presenting else "Every panel back.")

    def _update(self, selector: str, content: RenderableType, lines: int) -> None:
        """A layout pass costs the whole screen; only a new number of lines needs one."""
        self.query_one(selector, Static).update(content, layout=lines != self._lines.get(selector))
        self._lines[selector] = lines

    def _show_header(self, s: RunSnapshot) -> None:
        ended = self.ended
        ledger = s.ledger
        parts = [("", Text.assemble((s.title, "bold"), f"  ·  run {s.run_id}"))]
        if ended is not None:
            verdict = ended.report and ended.report.get("passed")
            state = Text.assemble((" FINISHED " if verdict else " FINISHED WITH PROBLEMS ", "bold reverse"))
            left = (
                "nothing left on the broker"
                if not ended.leftovers
                else f"LEFT ON THE BROKER: {', '.join(ended.leftovers)}"
            )
            parts.append(("  ", state.append(f"  {left}")))
            queued = ended.report and ended.report.get("backlog")
            if queued:
                parts.append((" · ", Text(queued["short"], style=WARN)))  # the summary and the report say the rest
        elif s.outage is not None:
            state = Text.assemble((" RECONNECTING ", f"bold reverse {BAD}"))
            parts.append(("  ", state.append(f" broker gone for {s.outage:.0f} s; clients resume when it is back")))
        else:
            shown = "PAUSED" if self.paused and s.state == "running" else s.state.upper()  # a drain is no pause
            state = Text.assemble((f" {shown} ", "bold reverse"), f" {s.elapsed:.0f} s")
            if s.duration < 3600:
                state.append(f" of {s.duration:g} s")
            parts.append(("  ", state))
        parts.append(("  ", Text(f"lost {ledger.lost:,}", style=BAD if ledger.lost else GOOD)))
        figures = f"published {ledger.published:,}  acked {ledger.acked:,}  outstanding {ledger.outstanding:,}"
        parts.append(("  · ", Text(figures)))
        if ended is None and self.SHOWS_RATE_SET:
            parts.append(("  · ", Text(f"rate {'max' if self.rate is None else f'{self.rate:g}/s'}")))
        if ended is not None:
            parts.append(("  · ", Text("e export · Esc back")))
        self.query_one(RunHeader).show(*parts)

    def _show_ledger(self, s: RunSnapshot) -> None:
        ended = self.ended
        report = ended.report if ended is not None else None
        if report is not None:
            self.query_one("#ledger").border_title = "Ledger: final, as in the report"
        shown, lines = ledger_lines(s.ledger, s.state == "finished", report and report.get("backlog"))
        self._update("#ledger", shown, lines)

    def _show_timeouts(self, s: RunSnapshot) -> None:
        text = Text()
        for count in pattern_counts(s.pattern):  # what can go wrong in this pattern; missed is told below
            if COUNTS[count].expectable and count != Count.MISSED:
                count_line(text, COUNTS[count].label, int(s.counters.get(count, 0)), BAD)
        count_line(text, "redelivered", s.ledger.redelivered, WARN)
        if s.pattern == "pub-sub":
            count_line(text, COUNTS[Count.MISSED].label, int(s.counters.get(Count.MISSED, 0)), WARN)
            count_line(text, "discarded", s.ledger.discarded, WARN)
        stalled = sorted(self.history.stalled | {c.name for c in s.clients if c.state == "hung"})
        count_line(text, "hung consumers", ", ".join(stalled), BAD)
        if s.outage is not None or s.counters.get("broker_outages"):
            for count in OUTAGE_COUNTS:
                count_line(text, COUNTS[count].label, int(s.counters.get(count, 0)), WARN)
            count_line(text, "duplicates", s.ledger.duplicates, WARN)
        text.rstrip()
        self._update("#timeouts", text, text.plain.count("\n") + 1)

    def on_run_finished(self) -> None:
        """Called by the app when the child reported its end: show the last snapshot and the verdict."""
        ended = self.ended
        if ended is None:
            return
        if ended.snapshot is not None:
            self._drawn.clear()
            self._render_latest()
        if ended.error:
            failed = Text.assemble(("Run failed: ", BAD), inert(ended.error))
            self.query_one(RunHeader).show(("", failed), ("  · ", Text("Esc back")))
        elif len(self.recordings) > 1:
            self.notify("Both runs are recorded: c puts them side by side.", title="Compare")
        self.refresh_bindings()

    # -- workshop ------------------------------------------------------------

    def _show_step(self) -> None:
        if self.experiment is None:
            return
        steps = self.experiment.steps
        step = steps[self.step]
        self.query_one("#workshop-step", Static).update(emphasised(step.text))
        where = "next: n" if self.step + 1 < len(steps) else "last step · s stops the run"
        progress = Text(f"step {self.step + 1} of {len(steps)} · {where}\n")
        progress.append("b back · B from the start · H hold")
        if len(self.recordings) > 1:  # a rerun: the runs side by side, from a shell
            names = " ".join(path.name for path in self.recordings[-2:])
            progress.append(
                f"\n\nBoth runs are recorded: c compares them once this one stops (s), as does\n"
                f"amqp-lab compare {names}",
                style="dim",
            )
        self.query_one("#workshop-progress", Static).update(progress)
        self.query_one("#workshop-advance", Static).update("")

    def _follow_step(self, s: RunSnapshot) -> None:
        """Show what the step waits for, and go on once it is met (unless held)."""
        if self.experiment is None or self._busy_with_steps or self.ended is not None:
            return
        advance = self.experiment.steps[self.step].advance
        if advance is None:
            return
        if self._began_run is None:
            self._began_run = s.run_id
        elif s.run_id != self._began_run:
            return  # the run before a rerun, still shown
        waiting = advance.waiting(self._began, s)
        line = Text()
        if self.held:
            line.append(" HELD ", style="bold reverse")
            line.append(" H lets it go on\n")  # what the step waits for on a line of its own, never broken
        line.append(waiting or "next step now", style="bold")
        self.query_one("#workshop-advance", Static).update(line)
        if waiting is None and not self.held and s.state == "running":
            self.action_next_step()

    def action_next_step(self) -> None:
        if self.experiment is None or self._busy_with_steps:
            return
        if self.step + 1 >= len(self.experiment.steps):
            self.notify("That was the last step. Press s to stop the run and clean up.")
            return
        self._go_to(self.step + 1)

    def action_previous_step(self) -> None:
        if self.experiment is None or self._busy_with_steps:
            return
        if self.step == 0:
            self.notify("This is the first step; B starts the experiment again.")
            return
        self._go_to(self.step - 1)

    def action_restart_experiment(self) -> None:
        if self.experiment is not None and not self._busy_with_steps:
            self._go_to(0)

    def action_hold(self) -> None:
        if self.experiment is None:
            return
        self.held = not self.held
        self.notify("Step held: it waits for n." if self.held else "The step goes on by itself again.")
        if self._rendered is not None:
            self._follow_step(self._rendered)

    def _go_to(self, step: int) -> None:
        """Forward one step: do its actions on the run. Anywhere else: a fresh run brought to that step."""
        assert self.experiment is not None
        forward = step == self.step + 1
        self.step = step
        self._show_step()
        if forward:
            actions: tuple[Control | Rerun, ...] = self.experiment.steps[step].actions
        else:
            overrides, controls = self.experiment.state_at(step)
            actions = (Rerun(overrides), *controls)
        if any(isinstance(action, Rerun) for action in actions):
            self._began, self._began_run = None, None  # counts from the fresh run's start
        else:
            self._began = self.latest
            self._began_run = self._began.run_id if self._began is not None else None
        self._busy_with_steps = True
        self._perform(actions)

    @work(group="workshop", exclusive=True)
    async def _perform(self, actions: tuple[Control | Rerun, ...]) -> None:
        assert self.experiment is not None
        try:
            for action in actions:
                if isinstance(action, Rerun):
                    await lab_of(self).end_run()
                    self.plan = None
                    self._begin(self.experiment.scenario(*action.overrides))
                    await lab_of(self).run_started()
                else:
                    lab_of(self).run_control(action)
        finally:
            self._busy_with_steps = False

    # -- controls ------------------------------------------------------------

    def _hurry(self, *parts: int) -> None:
        """A control's effect is drawn as soon as the run's process shows it, not when its part's turn comes."""
        until = time.monotonic() + HURRIED_FOR
        self._hurried.update(dict.fromkeys(parts, until))
        if self._hurry_timer is None:
            self._hurry_timer = self.set_interval(HURRIED_INTERVAL, self._render_hurried)

    def _run_is_live(self) -> bool:
        latest: RunSnapshot | None = self.latest
        if latest is None:  # once it has ended, check_action leaves these keys out
            self.notify("The run is not running.", severity="warning")
            return False
        if latest.state != "running":
            self.notify(f"The run is {latest.state}: its clients are being stopped.", severity="warning")
            return False
        return True

    def action_pause(self) -> None:
        if not self._run_is_live():
            return
        self.paused = not self.paused
        lab_of(self).run_control(PauseProducers() if self.paused else ResumeProducers())
        self._hurry(HEADER)
        self.notify(
            "Producers paused: queues drain, nothing new is published." if self.paused else "Producers resumed."
        )

    def action_rate(self, factor: float) -> None:
        if not self._run_is_live() or self.plan is None:
            return
        if self.rate is None:
            latest = self.latest
            clients = latest.clients if latest is not None else ()
            measured = sum(c.rate for c in clients if c.sent and not c.received) or 10.0
            if factor > 1:
                self.notify("Producers already send as fast as they can.")
                return
            self.rate = measured
        self.rate = max(self.rate * factor, 0.5)
        for role in dict.fromkeys(c.role for c in self.plan.clients if isinstance(c, PRODUCING)):
            lab_of(self).run_control(SetRate(role, self.rate))
        self._hurry(HEADER, CLIENTS)
        self.notify(f"Producer rate: {self.rate:g} per second each.")

    def _consumer_role(self) -> str:
        selected = self.query_one(ClientsTable).selected
        latest = self.latest
        role = next((c.role for c in latest.clients if c.name == selected), None) if latest else None
        if role in CONSUMER_ROLES:
            return role
        return SCALING.get(self.scenario.pattern, "consumer")

    def action_scale(self, action: Literal["add", "remove"]) -> None:
        """add or remove a consumer of the selected client's role (else the pattern's)."""
        if self._run_is_live():
            role = self._consumer_role()
            lab_of(self).run_control(Inject(role, action))
            self._hurry(CLIENTS)
            self.notify(f"{'Adding' if action == 'add' else 'Removing'} a {role}.")

    def action_fault(self, action: Literal["crash", "hang", "restart"]) -> None:
        if not self._run_is_live():
            return
        selected = self.query_one(ClientsTable).selected
        if selected is None:
            self.notify("Select a client in the table first (↑↓).", severity="warning")
            return
        lab_of(self).run_control(Inject(selected, action))
        self._hurry(CLIENTS)
        self.notify(f"{action.capitalize()}: {selected}.")

    def _start_recording(self) -> None:
        path = lab_of(self).record(True)
        if path is not None:
            self.recordings.append(path)
            self.notify(f"Recording to {path}\n(R stops; amqp-lab replay {path.name})", title="Recording")

    def action_record(self) -> None:
        if lab_of(self).recording is not None:
            path = lab_of(self).recording
            lab_of(self).record(False)
            self.notify(f"Recording stopped: {path}", title="Recording")
        elif self.latest is None:
            self.notify("Nothing to record: the run is not going.", severity="warning")
        else:
            self._start_recording()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "compare":  # offered once a workshop has a run before and after a rerun
            return len(self.recordings) > 1
        if action in LIVE_CONTROLS:  # the footer offers what applies: a finished run has nothing to steer
            return self.ended is None
        return True

    @work(group="compare", exclusive=True)
    async def action_compare(self) -> None:
        if len(self.recordings) < 2:
            return
        if self.ended is None:
            self.notify("Compare once this run has stopped (s): its figures are not final yet.", severity="warning")
            return
        try:
            a, b = await asyncio.to_thread(lambda: [read(path) for path in self.recordings[-2:]])
        except RecordingError as exc:
            self.notify(str(exc), title="Cannot compare", severity="error")
            return
        self.app.push_screen(CompareScreen(a, b))

    def action_stop(self) -> None:
        lab_of(self).run_control(StopRun())
        self.notify("Stopping: producers stop, consumers drain, then everything the run declared is deleted.")

    def action_leave(self) -> None:
        box = self.query_one("#event-filter", Input)
        if box.has_focus or box.value:
            box.value = ""
            self.query_one(ClientsTable).focus()
            return
        if self._owns_a_going_run():
            self.notify("The run is still going: press s to stop it (and clean up) first.", severity="warning")
            return
        self.dismiss()

    def _owns_a_going_run(self) -> bool:
        return lab_of(self).run_is_going

    def action_filter(self) -> None:
        self.query_one("#event-filter", Input).focus()

    @on(Input.Submitted, "#event-filter")
    def _filter_done(self) -> None:
        self.query_one(ClientsTable).focus()

    def action_export(self) -> None:
        snapshot = self.latest
        if snapshot is None:
            self.notify("Nothing to export yet.", severity="warning")
            return
        report = self._report(snapshot)
        folder = lab_of(self).export_dir
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"amqp-lab-{snapshot.run_id}-{time.strftime('%H%M%S')}"
        report_path = folder / f"{stem}.json"
        report_path.write_text(json.dumps(report, indent=2), encoding="utf-8")
        screenshot = Path(self.app.save_screenshot(filename=f"{stem}.svg", path=str(folder)))
        self.notify(f"Report: {report_path}\nScreenshot: {screenshot}", title="Exported", timeout=10)

    def _report(self, snapshot: RunSnapshot) -> dict[str, object]:
        """The run's report once it ended; before, what it would say now."""
        ended = self.ended
        if ended is not None and ended.report:
            return ended.report
        return build_report(self.scenario, snapshot, self.broker, [])
