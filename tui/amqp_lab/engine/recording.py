"""A run kept as data: its scenario, the snapshots the screens drew and every event, in one gzip of JSON lines.

Line one is the header (format, version, the resolved scenario, the broker's masked address). Each next line is a
frame: a snapshot without its events, the events new since the last frame, and which events it showed (as seq
ranges). The last line says how the run ended. Frames are taken at most four a second (each part of the live
screen is drawn once a second), so a file grows with the run's duration, never with its message count.
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from amqp_lab import __version__
from amqp_lab.engine.events import Event
from amqp_lab.engine.remote import RunEnded
from amqp_lab.engine.snapshot import RunSnapshot, event_adapter, snapshot_adapter
from amqp_lab.scenario.model import Scenario

FORMAT: Final = "amqp-lab-recording"
VERSION: Final = 1
FRAME_INTERVAL = 0.25  # seconds of the run between frames
FLUSH_INTERVAL = 2.0  # seconds of the run between flushes: a program killed mid-run leaves a file that replays
MAX_FILE_BYTES = 512 * 1024 * 1024  # compressed: about a week of frames; a bigger file is not one of ours
MAX_LINE_BYTES = 16 * 1024 * 1024  # one frame; a line longer than this is not a frame amqp-lab wrote


class RecordingError(Exception):
    """A file that cannot be replayed, and why, in words that say what to do."""


def seq_ranges(seqs: Iterable[int]) -> list[list[int]]:
    """[1, 2, 3, 7, 8] -> [[1, 3], [7, 8]]: which events a frame showed, in a few numbers."""
    ranges: list[list[int]] = []
    for seq in seqs:
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    return ranges


class Recorder:
    """Writes one run's recording as it goes; `finish` writes how it ended and closes the file."""

    def __init__(self, path: Path, scenario: Scenario, broker: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # Open for the run's whole life: finish() or close() closes it.
        self._file: gzip.GzipFile | None = gzip.GzipFile(path, "wb", compresslevel=6)
        self._seen: set[int] = set()
        self._last_at: float | None = None
        self._flushed_at = 0.0
        self._last_state = ""
        self._pending: RunSnapshot | None = None  # the newest snapshot not yet written
        self._unwritten: list[Event] = []  # events of snapshots between frames: written with the next frame
        self._write(
            {
                "format": FORMAT,
                "v": VERSION,
                "amqp_lab": __version__,
                "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "broker": broker,
                "scenario": scenario.model_dump(mode="json", by_alias=True),
            }
        )

    def add(self, snapshot: RunSnapshot) -> None:
        """Keep a snapshot: written if a frame interval passed or the run changed state, else held for later."""
        if self._file is None:
            return
        due = self._last_at is None or snapshot.elapsed - self._last_at >= FRAME_INTERVAL
        if due or snapshot.state != self._last_state or snapshot.outage is not None:
            self._frame(snapshot)
        else:
            self._pending = snapshot
            self._unwritten += self._new_events(snapshot)  # a later frame's tail may no longer carry them

    def finish(self, ended: RunEnded) -> None:
        if self._file is None:
            return
        final = ended.snapshot or self._pending
        if final is not None:
            self._frame(final)
        self._write({"end": {"report": ended.report, "leftovers": list(ended.leftovers), "error": ended.error}})
        self.close()

    def close(self) -> None:
        """Stop recording; a file closed without `finish` replays up to its last frame and says so."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _frame(self, snapshot: RunSnapshot) -> None:
        self._pending = None
        self._last_at, self._last_state = snapshot.elapsed, snapshot.state
        new, self._unwritten = [*self._unwritten, *self._new_events(snapshot)], []
        document = snapshot_adapter().dump_python(replace(snapshot, events=()), mode="json")
        del document["events"]
        self._write(
            {
                "frame": document,
                "new_events": [event_adapter().dump_python(e, mode="json") for e in new],
                "shown": seq_ranges(e.seq for e in snapshot.events),
            }
        )
        if snapshot.elapsed - self._flushed_at >= FLUSH_INTERVAL:
            assert self._file is not None
            self._file.flush()  # ends a deflate block: what came so far can be read back without the rest
            self._flushed_at = snapshot.elapsed

    def _new_events(self, snapshot: RunSnapshot) -> list[Event]:
        new = [e for e in snapshot.events if e.seq not in self._seen]
        self._seen.update(e.seq for e in new)
        return new

    def _write(self, document: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write(json.dumps(document, separators=(",", ":")).encode() + b"\n")


@dataclass(frozen=True)
class Recording:
    """A recording read back: the scenario, every frame as the screens drew it, and the run's end if it has one."""

    path: Path
    scenario: Scenario
    broker: str
    recorded_at: str
    frames: tuple[RunSnapshot, ...]
    ended: RunEnded | None
    notes: tuple[str, ...] = field(default=())  # what a user should know before trusting it: a file cut short
    # Every event, with the frame it was written with: the first that showed it, or, for one that came and went
    # between two frames (more events than a snapshot carries), the next frame.
    events: tuple[tuple[int, Event], ...] = field(default=())

    @property
    def duration(self) -> float:
        return self.frames[-1].elapsed

    def at(self, elapsed: float) -> int:
        """The index of the frame the screens showed at `elapsed` seconds: the last one taken by then."""
        return max(bisect_right(self.frames, elapsed, key=lambda frame: frame.elapsed) - 1, 0)


def _lines(path: Path) -> Iterator[bytes]:
    """The file's lines; a cut-off gzip ends the iteration with EOFError after its last whole line."""
    with gzip.open(path, "rb") as file:
        while line := file.readline(MAX_LINE_BYTES + 1):
            if len(line) > MAX_LINE_BYTES:
                raise RecordingError(f"{path}: a line of over {MAX_LINE_BYTES // 2**20} MB: not an amqp-lab recording")
            if not line.endswith(b"\n"):
                raise EOFError("the last line is cut")
            yield line


def read(path: Path) -> Recording:
    """Read a recording whole; RecordingError says why a file is not one this amqp-lab can replay."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size > MAX_FILE_BYTES:
        raise RecordingError(
            f"{path} is {size / 2**20:,.0f} MB; amqp-lab replays recordings of up to {MAX_FILE_BYTES // 2**20} MB"
        )
    reader = _Reader(path)
    notes: list[str] = []
    try:
        reader.read_all()
    except (OSError, EOFError, zlib.error):
        if reader.header is None:
            raise RecordingError(f"{path} is not an amqp-lab recording (not a gzip file of JSON lines)") from None
        notes.append("the file is cut short: it replays up to its last whole frame")
    assert reader.header is not None
    if not reader.frames:
        raise RecordingError(f"{path} holds no frame of its run: it was cut short before the run's first snapshot")
    if reader.ended is None and not notes:
        notes.append("the recording stops before its run ended (the recorder was stopped or the program quit)")
    scenario, broker, recorded_at = reader.header
    return Recording(
        path, scenario, broker, recorded_at, tuple(reader.frames), reader.ended, tuple(notes), tuple(reader.events)
    )


class _Reader:
    """Reads line by line, so that what came before a cut in the file is kept."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: tuple[Scenario, str, str] | None = None
        self.frames: list[RunSnapshot] = []
        self.ended: RunEnded | None = None
        self._events: dict[int, Event] = {}
        self.events: list[tuple[int, Event]] = []

    def read_all(self) -> None:
        lines = _lines(self.path)
        self.header = self._header(next(lines, b""))
        for number, line in enumerate(lines, start=2):
            try:
                self._line(json.loads(line))
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise RecordingError(f"{self.path}, line {number}: not a frame amqp-lab wrote ({reason})") from None
            if self.ended is not None:
                return

    def _header(self, line: bytes) -> tuple[Scenario, str, str]:
        path = self.path
        try:
            document = json.loads(line)
        except ValueError:
            raise RecordingError(f"{path} is not an amqp-lab recording (its first line is not JSON)") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise RecordingError(f"{path} is not an amqp-lab recording (no amqp-lab header)")
        version = document.get("v")
        if version != VERSION:
            raise RecordingError(
                f"{path} is a recording of format v{version}, from amqp-lab {document.get('amqp_lab', '?')}; this "
                f"amqp-lab ({__version__}) reads v{VERSION}: replay it with the amqp-lab that recorded it"
            )
        try:
            scenario = Scenario.model_validate(document["scenario"])
        except (KeyError, ValidationError) as exc:
            raise RecordingError(f"{path}: its scenario does not read as one: {str(exc).splitlines()[0]}") from None
        return scenario, str(document.get("broker", "")), str(document.get("recorded_at", ""))

    def _line(self, document: dict[str, Any]) -> None:
        if "end" in document:
            end = document["end"]
            final = self.frames[-1] if self.frames else None
            self.ended = RunEnded(final, end.get("report"), tuple(end.get("leftovers", ())), end.get("error"))
            return
        for e in document["new_events"]:
            event = event_adapter().validate_python(e)
            self._events[event.seq] = event
            self.events.append((len(self.frames), event))
        events = self._events
        shown = tuple(events[seq] for a, b in document["shown"] for seq in range(a, b + 1) if seq in events)
        self.frames.append(snapshot_adapter().validate_python({**document["frame"], "events": shown}))
