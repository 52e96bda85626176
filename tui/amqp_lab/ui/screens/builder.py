"""Build a scenario: pick a pattern or open a file, edit its options with their reasons, preview, save, run.

Each pattern has its own form (switching keeps what was typed); every field is
checked as it is typed by loading the scenario with the form's values as
overrides, exactly as `amqp-lab run --set` would. The custom pattern is edited
as TOML, checked the same way.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from rich.console import Group
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import ContentSwitcher, Input, Label, Select, Static, Switch, Tab, Tabs, TextArea

from amqp_lab.scenario.files import PRESETS, ScenarioError, from_text, read_source, save
from amqp_lab.scenario.model import Scenario
from amqp_lab.scenario.patterns import build
from amqp_lab.ui.colors import BAD
from amqp_lab.ui.flow import render_flow
from amqp_lab.ui.lab import lab_of
from amqp_lab.ui.screens.run import WIDE_FLOW
from amqp_lab.ui.text import inert
from amqp_lab.ui.themes import StyleKeepingScreen
from amqp_lab.ui.widgets.fitting_footer import FittingFooter
from amqp_lab.ui.widgets.status_bar import StatusBar

PREVIEW_PREFIX = "lab.<run>."
PREBUILD_AFTER = 0.5  # seconds after the first form is shown before the others are built
NARROW = 100  # columns under which the options take narrower name and value columns
COMMON = ("name", "duration", "drain", "seed")  # the scenario's own keys a form shows above its pattern's
LABELS = {"rpc": "RPC", "map-reduce": "Map-reduce", "workers": "Workers", "pub-sub": "Pub-sub", "custom": "Custom"}


def inline_toml(value: Any, nested: bool = False) -> str:
    """A value as one line of TOML, for an Input: lists and tables inline. A string alone is shown bare (the form
    reads a bare word as a string); inside a list or table it is quoted, as TOML wants."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        if set(value) == {"kind", "mean", "spread"} and value["spread"] in ("0s", 0):
            return f"{value['kind']}:{value['mean']}"
        return (
            "{"
            + ", ".join(
                f"{json.dumps(k) if not k.replace('-', '').isalnum() else k} = {inline_toml(v, nested=True)}"
                for k, v in value.items()
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(inline_toml(v, nested=True) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value) if nested else value
    return str(value)


def _choices(annotation: Any) -> tuple[list[str], bool] | None:
    """The allowed values of a Literal (or Literal | None, or bool | None), and whether None is one."""
    args = typing.get_args(annotation)
    optional = type(None) in args
    inner = [a for a in args if a is not type(None)] if optional else [annotation]
    if len(inner) == 1 and typing.get_origin(inner[0]) is typing.Literal:
        return [str(v) for v in typing.get_args(inner[0])], optional
    if optional and inner == [bool]:
        return ["true", "false"], True
    return None


class Field(Vertical):
    """One option: its name, the control, its one-line reason, and what is wrong with it."""

    def __init__(self, key: str, field: FieldInfo, value: Any) -> None:
        super().__init__(classes="field")
        self.key = key
        self.annotation = field.annotation
        self.value = value
        self.reason = field.description or ""
        self.current = "" if value is None else inline_toml(value)  # an override's right-hand side; "" unsets
        self.error: str | None = None
        if isinstance(value, str) and _choices(self.annotation) is not None:
            self.current = json.dumps(value)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-row"):
            yield from self._row()
        yield Static(inert(self.error or ""), classes="field-error")

    def _row(self) -> ComposeResult:
        name = self.key.rpartition(".")[2]
        yield Label(name, classes="field-name")
        choices = _choices(self.annotation)
        if self.annotation is bool:
            yield Switch(bool(self.value), classes="control", animate=False)
            yield Static("on" if self.value else "off", classes="switch-state")
        elif choices is not None:
            values, optional = choices
            options = [("auto (see the reason)", "")] if optional else []
            options += [(v, v) for v in values]
            shown = "" if self.value is None else inline_toml(self.value)
            yield Select(options, value=shown, allow_blank=False, classes="control", compact=True)
        else:
            yield Input(inline_toml(self.value), classes="control", compact=True)
        yield Static(self.reason, classes="field-reason")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.current = event.value.strip()

    def on_switch_changed(self, event: Switch.Changed) -> None:
        self.current = "true" if event.value else "false"
        self.query_one(".switch-state", Static).update("on" if event.value else "off")

    def on_select_changed(self, event: Select.Changed) -> None:
        value = str(event.value)
        self.current = value if value in ("", "true", "false") else json.dumps(value)

    def show_error(self, message: str | None) -> None:
        self.error = message
        self.set_class(message is not None, "-invalid")
        for line in self.query(".field-error").results(Static):
            line.update(inert(message or ""))


class PatternForm(VerticalScroll):
    """The fields of one pattern over a base scenario text (a preset or an opened file)."""

    def __init__(self, pattern: str, where: str, text: str) -> None:
        super().__init__(id=f"form-{pattern}", classes="pattern-form")
        self.pattern = pattern
        self.where = where
        self.text = text
        self.scenario = from_text(text, where)

    def compose(self) -> ComposeResult:
        data = self.scenario.model_dump(mode="json", by_alias=True)
        if self.pattern == "custom":
            yield Static(
                "The whole scenario as TOML (see docs/scenarios.md): checked as you type.", classes="field-reason"
            )
            yield TextArea(self.text, language="toml", id="custom-toml", soft_wrap=False, show_line_numbers=True)
            yield Static("", classes="field-error", id="custom-error")
            return
        for key in COMMON:
            yield Field(key, Scenario.model_fields[key], data[key])
        section = self.pattern  # each pattern's options are the section named after it
        model = type(getattr(self.scenario, section.replace("-", "_")))
        yield Static(Text(f"[{section}]"), classes="section-title")
        for name, field in model.model_fields.items():
            yield Field(f"{section}.{name}", field, data[section][name])

    def overrides(self) -> list[str]:
        return [f"{f.key}={f.current}" for f in self.query(Field)]

    def evaluate(self) -> tuple[Scenario | None, str | None]:
        """Load the base text with the form's values; mark each field with its error."""
        if self.pattern == "custom":
            areas = self.query("#custom-toml").results(TextArea)
            self.text = next((area.text for area in areas), self.text)
            try:
                scenario = from_text(self.text, self.where)
            except ScenarioError as exc:
                for line in self.query("#custom-error").results(Static):
                    line.update(inert(str(exc)))
                return None, str(exc)
            for line in self.query("#custom-error").results(Static):
                line.update("")
            return scenario, None
        try:
            scenario = from_text(self.text, self.where, self.overrides())
        except ScenarioError as exc:
            for field in self.query(Field):
                field.show_error(exc.keys.get(field.key))
            return None, str(exc)
        for field in self.query(Field):
            field.show_error(None)
        return scenario, None


class PathPrompt(ModalScreen[Path | None], StyleKeepingScreen[Path | None]):
    """Ask for a path; `must_exist` for opening, else confirm before replacing a file."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, default: str, must_exist: bool) -> None:
        super().__init__()
        self.title_text = title
        self.default = default
        self.must_exist = must_exist
        self._confirmed: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="path-prompt"):
            yield Static(self.title_text, classes="title")
            yield Input(self.default, id="path")
            yield Static("Enter to confirm, Esc to cancel", id="path-hint")
        yield FittingFooter()

    @on(Input.Submitted, "#path")
    def _submitted(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        hint = self.query_one("#path-hint", Static)
        if not event.value.strip():
            hint.update("Type a path.")
        elif self.must_exist and not path.is_file():
            hint.update(inert(f"{path}: no such file."))
        elif not self.must_exist and path.is_dir():
            hint.update(inert(f"{path} is a folder: add a file name."))
        elif not self.must_exist and path.exists() and self._confirmed != path:
            self._confirmed = path
            hint.update(inert(f"{path} exists: Enter again replaces it, Esc keeps it."))
        else:
            self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)


class BuilderScreen(StyleKeepingScreen[None]):
    BINDINGS = [
        Binding("ctrl+r,f5", "run", "Run", priority=True),
        Binding("ctrl+s", "save", "Save TOML", priority=True),
        Binding("ctrl+o", "open", "Open file", priority=True),
        Binding("ctrl+left", "pattern(-1)", "Prev pattern", show=False, priority=True),
        Binding("ctrl+right", "pattern(1)", "Next pattern", show=False, priority=True),
        Binding("escape", "leave", "Back"),
    ]

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW, "-wide")]  # Textual sets the class as the width changes

    def __init__(self, source: str = "rpc") -> None:
        super().__init__()
        self.source = source
        self.scenario: Scenario | None = None
        self.problem: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield Tabs(*(Tab(LABELS[p], id=f"tab-{p}") for p in PRESETS), id="patterns")
        with Vertical(id="preview"):
            yield Static(id="preview-title")
            yield Static(id="preview-flow")
            yield Static(id="preview-notes")
        yield ContentSwitcher(id="forms")
        yield FittingFooter()

    def on_mount(self) -> None:
        self.query_one(StatusBar).follow(self)
        self.query_one("#preview").border_title = "Topology preview"
        self.query_one("#forms").border_title = "Options (each with what switching it shows)"
        try:
            where, text = read_source(self.source)
            pattern = from_text(text, where).pattern
        except ScenarioError as exc:
            self.notify(inert(str(exc)).plain, title="Cannot open the scenario", severity="error", timeout=15)
            where, text = read_source("rpc")
            pattern = "rpc"
        self._add_form(pattern, where, text)
        self.query_one(Tabs).active = f"tab-{pattern}"

    def on_screen_resume(self) -> None:
        self.set_timer(PREBUILD_AFTER, self._build_next_form)  # those not built while the builder was shown

    def _build_next_form(self) -> None:
        """The other patterns' forms, one per idle moment while the builder is shown, so switching pattern shows
        its options at once (a form of some twenty fields takes 300 ms or more to build here: once the user left,
        each held up a key on the screen they went to)."""
        missing = [p for p in PRESETS if self._form(p) is None]
        if missing and self.app.screen is self:
            where, text = read_source(missing[0])
            form = PatternForm(missing[0], where, text)
            form.display = False  # the switcher hides only the children it had when its current one was set
            self.query_one(ContentSwitcher).mount(form)
            self.call_after_refresh(self._build_next_form)

    def _form(self, pattern: str) -> PatternForm | None:
        found = self.query(f"#form-{pattern}")
        return found.first(PatternForm) if found else None

    def _add_form(self, pattern: str, where: str, text: str) -> None:
        switcher = self.query_one(ContentSwitcher)
        old = self._form(pattern)
        if old is not None:
            old.remove()
        switcher.mount(PatternForm(pattern, where, text))
        switcher.current = f"form-{pattern}"
        self.call_after_refresh(self._evaluate)

    @on(Tabs.TabActivated, "#patterns")
    def _pattern_chosen(self, event: Tabs.TabActivated) -> None:
        pattern = str(event.tab.id).removeprefix("tab-")
        if self._form(pattern) is None:
            where, text = read_source(pattern)
            self._add_form(pattern, where, text)
        else:
            self.query_one(ContentSwitcher).current = f"form-{pattern}"
            self._evaluate()

    def action_pattern(self, step: int) -> None:
        tabs = self.query_one(Tabs)
        tabs.action_next_tab() if step > 0 else tabs.action_previous_tab()

    @on(Input.Changed, ".control")
    @on(Switch.Changed, ".control")
    @on(Select.Changed, ".control")
    @on(TextArea.Changed, "#custom-toml")
    def _edited(self) -> None:
        self._evaluate()

    @property
    def form(self) -> PatternForm | None:
        current = self.query_one(ContentSwitcher).current
        return self._form(current.removeprefix("form-")) if current else None

    def _evaluate(self) -> None:
        form = self.form
        if form is None:
            return
        self.scenario, self.problem = form.evaluate()
        title = self.query_one("#preview-title", Static)
        if self.scenario is None:
            title.update(Text.assemble(("Not runnable yet: ", BAD), inert(self.problem or "")))
            self.query_one("#preview-flow", Static).update("")
            self.query_one("#preview-notes", Static).update("")
            return
        plan = build(self.scenario, PREVIEW_PREFIX)
        title.update(
            Text.assemble(
                (self.scenario.title, "bold"),
                "  ",
                inert(self.scenario.description),
                "\n",
                (
                    f"{len(plan.topology.exchanges)} exchanges · {len(plan.topology.queues)} shared queues · "
                    f"{len(plan.topology.bindings)} bindings · {len(plan.clients)} clients · ctrl+r runs it",
                    "dim",
                ),
            )
        )
        flow = self.query_one("#preview-flow", Static)
        flow.update(render_flow(plan, None, wide=flow.content_size.width >= WIDE_FLOW)[0])
        notes = [Text("• " + note) for note in plan.notes]
        self.query_one("#preview-notes", Static).update(Group(*notes))

    # -- actions -------------------------------------------------------------

    def action_run(self) -> None:
        if self.scenario is None:
            self.notify(inert(self.problem or "The scenario is not valid.").plain, title="Cannot run", severity="error")
            return
        lab_of(self).open_run(self.scenario)

    def action_save(self) -> None:
        if self.scenario is None:
            self.notify(inert(self.problem or "").plain, title="Fix the scenario before saving", severity="error")
            return
        scenario = self.scenario

        def write(path: Path | None) -> None:
            if path is None:
                return
            try:
                save(scenario, path)
            except OSError as exc:
                self.notify(inert(f"{path}: {exc}").plain, title="Not saved", severity="error")
                return
            self.notify(f"Saved to {path.resolve()}\nRun it headless: amqp-lab run {path}", title="Saved")

        default = f"{scenario.title.replace(' ', '-')}.toml"
        self.app.push_screen(PathPrompt("Save the scenario as TOML", default, must_exist=False), write)

    def action_open(self) -> None:
        def open_file(path: Path | None) -> None:
            if path is None:
                return
            try:
                where, text = read_source(str(path))
                pattern = from_text(text, where).pattern
            except ScenarioError as exc:
                self.notify(inert(str(exc)).plain, title="Cannot open", severity="error", timeout=15)
                return
            self._add_form(pattern, where, text)
            self.query_one(Tabs).active = f"tab-{pattern}"
            self.notify(f"Opened {where}")

        self.app.push_screen(PathPrompt("Open a scenario file", "", must_exist=True), open_file)

    def action_leave(self) -> None:
        self.dismiss()
