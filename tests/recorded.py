"""A recording made from hand-made snapshots: a minute of a workers run whose figures grow, an event every five
seconds and a crash at 30 s. What the reader and the replay screen are tested on when no broker is needed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from amqp_lab.engine.events import Event, EventKind
from amqp_lab.engine.recording import Recorder
from amqp_lab.engine.remote import RunEnded
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.files import load

from tests.ui.test_snapshots import FROZEN

LENGTH = 60.0
CRASH_AT = 30


def frame_at(elapsed: float, state: str = "running") -> RunSnapshot:
    """The run as it might be at `elapsed`: its figures grown, an event every five seconds."""
    n = int(elapsed * 40)
    events = tuple(
        Event(float(t), EventKind.CRASH, "worker-2", "crashed: channel dropped", seq=t // 5 + 1)
        if t == CRASH_AT
        else Event(float(t), EventKind.INFO, "run", f"at {t} s", seq=t // 5 + 1)
        for t in range(0, int(elapsed) + 1, 5)
    )
    ledger = replace(FROZEN.ledger, published=n, confirmed=n, copies=n, delivered=n - 3, acked=n - 5, outstanding=5)
    # Each client moves on (none stalls) but worker-2, which the snapshot says is hung.
    clients = tuple(
        replace(c, received=c.received + n) if c.received else replace(c, sent=c.sent + n) for c in FROZEN.clients
    )
    return replace(
        FROZEN,
        elapsed=elapsed,
        state=state,
        ledger=ledger,
        rates={"published": 40.0 + n % 7},
        events=events,
        clients=clients,
    )


def write_recording(path: Path) -> Path:
    recorder = Recorder(path, load("workers", []), "amqp://guest:****@127.0.0.1:5672/")
    for step in range(int(LENGTH * 4)):
        recorder.add(frame_at(step * 0.25))
    recorder.finish(RunEnded(frame_at(LENGTH, "finished"), {"passed": True}, (), None))
    return path
