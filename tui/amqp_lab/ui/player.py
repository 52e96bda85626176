"""Where a replay is: its position in the recording, playing or paused, how fast, and the way to the next event."""

from __future__ import annotations

from amqp_lab.engine.events import EventKind
from amqp_lab.engine.recording import Recording
from amqp_lab.engine.snapshot import RunSnapshot

SPEEDS = (0.5, 1.0, 2.0, 4.0, 8.0)


class Player:
    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.elapsed = recording.frames[0].elapsed
        self.index = 0
        self.playing = True
        self.speed = 1.0
        # The kinds a user can step to, in the order they first happened.
        self.kinds: tuple[EventKind, ...] = tuple(dict.fromkeys(e.kind for _, e in recording.events))
        self.kind: EventKind | None = self.kinds[0] if self.kinds else None

    @property
    def current(self) -> RunSnapshot:
        return self.recording.frames[self.index]

    @property
    def start(self) -> float:
        return self.recording.frames[0].elapsed

    @property
    def end(self) -> float:
        return self.recording.duration

    @property
    def at_end(self) -> bool:
        return self.index == len(self.recording.frames) - 1

    def advance(self, seconds: float) -> None:
        """Wall-clock seconds passed: move on by that many times the speed; stop at the end."""
        if self.playing:
            self.seek(self.elapsed + seconds * self.speed)
            if self.at_end:
                self.playing = False

    def seek(self, elapsed: float) -> None:
        self.elapsed = min(max(elapsed, self.start), self.end)
        self.index = self.recording.at(self.elapsed)

    def toggle(self) -> None:
        if self.at_end:  # play again from the start, as a video player does
            self.seek(self.start)
        self.playing = not self.playing

    def faster(self, steps: int) -> None:
        """One step along SPEEDS (x0.5 to x8), up or down."""
        at = SPEEDS.index(self.speed) + steps
        self.speed = SPEEDS[min(max(at, 0), len(SPEEDS) - 1)]

    def next_kind(self) -> None:
        if self.kind is not None:
            self.kind = self.kinds[(self.kinds.index(self.kind) + 1) % len(self.kinds)]

    def next_event(self) -> bool:
        """Go to the first frame showing the next event of the chosen kind; False if there is none after here."""
        for index, event in self.recording.events:
            if event.kind == self.kind and index > self.index:
                self.index = index
                self.elapsed = self.recording.frames[index].elapsed
                return True
        return False
