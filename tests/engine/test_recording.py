"""Runs as data: a recording holds what the run showed, frame for frame; a file grows with the run's length, not its
message count; `amqp-lab compare` on two real runs names the setting that changed and which way the figures went;
a damaged, cut, future or huge file gives one clear message."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from amqp_lab.cli import main
from amqp_lab.compare import figure_changes, setting_changes
from amqp_lab.config import Settings
from amqp_lab.engine import recording
from amqp_lab.engine.events import EventKind
from amqp_lab.engine.recording import Recorder, RecordingError, read
from amqp_lab.engine.remote import RunEnded
from amqp_lab.engine.run import Run
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.files import load
from rabbitmq_node import VERSIONS, PrivateNode

from tests.recorded import write_recording

CRASH_AT_2S = 'schedule=[{at=2, client="worker-1", action="crash"}]'


async def recorded_run(settings: Settings, path: Path, *overrides: str) -> tuple[Run, list[RunSnapshot]]:
    """A real run, recorded; with every snapshot the run gave its listeners (what a live screen could draw)."""
    scenario = load("workers", overrides)
    run = Run(scenario, settings)
    seen: list[RunSnapshot] = []
    recorder = Recorder(path, scenario, settings.primary.display())
    run.add_listener(seen.append)
    run.add_listener(recorder.add)
    final = await run.execute()
    recorder.finish(RunEnded(final, {"passed": True}, tuple(run.leftovers), None))
    return run, seen


@pytest.fixture
def settings_one(rabbit: PrivateNode, settings: Settings) -> Settings:
    if rabbit.version != VERSIONS[0]:
        pytest.skip("the client side is under test here: one broker version is enough")
    return settings


async def test_a_recording_holds_the_snapshots_the_run_gave_its_screen(settings_one: Settings, tmp_path: Path) -> None:
    path = tmp_path / "run.rec.gz"
    run, seen = await recorded_run(settings_one, path, "duration=4", "workers.rate=50", CRASH_AT_2S)
    replayed = read(path)

    assert replayed.scenario == run.scenario
    assert replayed.frames[-1] == run.last  # the final figures, events and all, exactly
    assert replayed.ended is not None and replayed.ended.report == {"passed": True} and replayed.notes == ()
    # Every frame is a snapshot the run handed its listeners, its events included; about four a second.
    assert all(frame in seen for frame in replayed.frames)
    assert 4 * 3 <= len(replayed.frames) <= 4 * 8
    crash = [(i, e) for i, e in replayed.events if e.kind == EventKind.CRASH and e.client == "worker-1"]
    assert crash and all(event in replayed.frames[index].events for index, event in crash)


async def test_a_recording_grows_with_time_not_with_messages(settings_one: Settings, tmp_path: Path) -> None:
    slow, fast = tmp_path / "slow.rec.gz", tmp_path / "fast.rec.gz"
    await recorded_run(settings_one, slow, "duration=3", "workers.rate=20")
    await recorded_run(settings_one, fast, "duration=3", "workers.rate=max", "workers.processing=0s")
    quiet, busy = read(slow), read(fast)
    few, many = quiet.frames[-1].ledger.published, busy.frames[-1].ledger.published
    assert many > 5 * few, (few, many)  # under load the fast run does less: the point is the ratio below
    per_frame = [path.stat().st_size / len(r.frames) for path, r in ((slow, quiet), (fast, busy))]
    assert per_frame[1] < 2 * per_frame[0], (few, many, per_frame)


async def test_compare_names_the_setting_and_the_direction(
    settings_one: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Persistent, confirmed tasks against transient fire-and-forget ones, on RabbitMQ."""
    a, b = tmp_path / "persistent.rec.gz", tmp_path / "transient.rec.gz"
    await recorded_run(settings_one, a, "duration=3", "workers.rate=50")
    transient = ("workers.persistent=false", "workers.publish_mode=none")
    await recorded_run(settings_one, b, "duration=3", "workers.rate=50", *transient)

    changed = {c.key: (c.a, c.b) for c in setting_changes(read(a), read(b))}
    assert changed == {"workers.persistent": (True, False), "workers.publish_mode": ("confirms", "none")}
    figures = {f.figure: f for f in figure_changes(read(a), read(b))}
    confirmed = figures["ledger confirmed"]
    assert confirmed.a == read(a).frames[-1].ledger.confirmed > 0 and confirmed.b == 0 and confirmed.change == -1
    assert "ledger lost" not in figures  # nothing lost in either: no row of zeros

    report = tmp_path / "compare.json"
    assert main(["compare", str(a), str(b), "--json", str(report)]) == 0
    shown = capsys.readouterr().out
    assert "workers.persistent" in shown and "-100%" in shown
    document = json.loads(report.read_text())
    assert {"key": "workers.persistent", "a": True, "b": False} in document["settings"]
    assert any(f["figure"] == "ledger confirmed" and f["change"] == -1 for f in document["figures"])


# -- damaged files: made from a real recording --------------------------------------------------------------------


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_recording(tmp_path_factory.mktemp("recordings") / "good.rec.gz")


def _lines(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).splitlines(keepends=True)


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(gzip.compress(b"".join(lines)))
    return path


def test_a_cut_file_replays_up_to_its_last_whole_frame(good: Path, tmp_path: Path) -> None:
    data = good.read_bytes()
    cut = tmp_path / "cut.rec.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    replayed = read(cut)
    assert 0 < len(replayed.frames) < len(read(good).frames)
    assert replayed.ended is None and "cut short" in replayed.notes[0]


def test_a_recording_without_its_end_says_so(good: Path, tmp_path: Path) -> None:
    lines = _lines(good)
    replayed = read(_write(tmp_path / "no-end.rec.gz", lines[:-1]))
    assert replayed.ended is None and "stops before its run ended" in replayed.notes[0]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda lines: [b"PK\x03\x04 a zip file\n"], "not an amqp-lab recording (its first line is not JSON)"),
        (lambda lines: [b'{"format": "other"}\n', *lines[1:]], "not an amqp-lab recording (no amqp-lab header)"),
        (
            lambda lines: [lines[0].replace(b'"v":1', b'"v":2'), *lines[1:]],
            "a recording of format v2, from amqp-lab 0.1.0; this amqp-lab (0.1.0) reads v1",
        ),
        (lambda lines: [*lines[:3], b'{"frame": {"run_id": 7}}\n', *lines[4:]], "line 4: not a frame amqp-lab wrote"),
        (lambda lines: lines[:1], "holds no frame of its run"),
    ],
    ids=["not-json", "not-ours", "future-version", "bad-frame", "no-frames"],
)
def test_a_damaged_recording_gives_one_clear_message(good: Path, tmp_path: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path / "damaged.rec.gz", damage(_lines(good)))
    with pytest.raises(RecordingError, match=re.escape(message)):
        read(path)


def test_not_a_gzip_and_too_big_and_missing(good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain.rec.gz"
    plain.write_text("hello\n")
    with pytest.raises(RecordingError, match="not a gzip file"):
        read(plain)
    monkeypatch.setattr(recording, "MAX_FILE_BYTES", good.stat().st_size - 1)
    with pytest.raises(RecordingError, match="amqp-lab replays recordings of up to"):
        read(good)
    with pytest.raises(RecordingError, match=r"cannot read .*: No such file"):
        read(tmp_path / "missing.rec.gz")


@pytest.mark.parametrize("command", ["replay", "compare"])
def test_the_commands_say_what_is_wrong_and_exit_2(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.rec.gz"
    bad.write_bytes(b"\x1f\x8b\x08 not really gzip")
    argv = [command, str(bad)] if command == "replay" else [command, str(bad), str(bad)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert f"amqp-lab {command}: {bad} is not an amqp-lab recording" in captured.err
    assert "Traceback" not in captured.err + captured.out
