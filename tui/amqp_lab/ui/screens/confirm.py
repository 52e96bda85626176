"""A yes/no question before anything that cannot be undone; it names the object it acts on."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from amqp_lab.ui.text import inert
from amqp_lab.ui.themes import StyleKeepingScreen
from amqp_lab.ui.widgets.fitting_footer import FittingFooter


class ConfirmScreen(ModalScreen[bool], StyleKeepingScreen[bool]):
    BINDINGS = [Binding("escape,n", "answer(False)", "Cancel"), Binding("y", "answer(True)", "Confirm")]

    def __init__(self, verb: str, kind: str, name: str, vhost: str, consequence: str) -> None:
        super().__init__()
        self.question = Text(f"{verb} {kind} ", style="bold")
        self.question.append_text(inert(name, "bold"))
        self.question.append_text(inert(f" in vhost {vhost}?"))
        self.consequence = consequence
        self.verb = verb

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm", classes="dialog"):
            yield Static(self.question, classes="title")
            yield Static(self.consequence, id="confirm-consequence")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.verb} (y)", variant="error", id="yes")
                yield Button("Cancel (n, Esc)", id="no")
        yield FittingFooter()

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # Enter on its own never destroys anything

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
