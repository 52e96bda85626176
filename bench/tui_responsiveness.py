#!/usr/bin/env python3
"""How long a key takes to show its effect, in a real terminal, idle against under load, in one run.

The real `amqp-lab` runs in tmux (140x40) on one private RabbitMQ node. Each key is sent with
`tmux send-keys` and timed until the terminal shows its effect (`tmux capture-pane`, polled), so the time
covers the whole path a user waits on: the terminal, the app, the redraw. Rounds alternate idle and load
on the same screens:

  explorer  `?` help and Esc back, `b` the builder and Esc back, Enter a queue's detail and Esc back,
            `2` the exchanges tab and `1` back; load: a headless `amqp-lab run workers` at full speed
            beside it, on the same broker
  live run  `?` help and Esc back, `P` projector and back, `a` a worker added and `d` removed (the row in
            the clients table: the run's own process does it), `space` pause and resume; idle: the
            producers paused, load: the workers scenario at full speed (rate max, processing 0, 3 workers)
  plain     bench/plain_textual_app.py, a plain Textual app shaped like the live run screen: `?` help (the
            lab's text) and Esc back, `P` a class that hides and recolours panels and back, `a` a table row
            added and `d` removed; load: a headless full-speed run beside it, as for the explorer. What Textual
            itself costs here for the live run's kinds of change: with the live run, the two side by side

Prints p50/p95/max per key, idle and under load, and the ratio of the p95s, with the load average.

    .venv/bin/python bench/tui_responsiveness.py [--rounds 8] [--version 4.0] [--processes N|auto]
                                                 [--only explorer live plain]

Targets: every key's p95 at most 100 ms idle and 150 ms under load.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import httpx
import rabbitmq_node

SESSION = "amqplab-bench-keys"
QUEUE = "bench.orders"
LAB = str(Path(sys.executable).with_name("amqp-lab"))
PLAIN = [sys.executable, str(Path(__file__).with_name("plain_textual_app.py"))]
FULL_SPEED = 'preset = "workers"\nduration = "3600s"\n\n[workers]\nworkers = 3\nrate = "max"\nprocessing = "0ms"\n'
WORKER_ROW = re.compile(r"│ worker-\d+ +worker ")
Shown = Callable[[str], bool]
Timings = dict[str, list[float]]


def pane() -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", SESSION], capture_output=True, text=True).stdout


def until(shown: Shown, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        screen = pane()
        if shown(screen):
            return screen
        time.sleep(0.015)  # each capture is a process: polling harder would load the machine it measures
    raise TimeoutError(f"the terminal never showed what was expected; it shows:\n{pane()}")


def press(key: str, shown: Shown) -> float:
    """Milliseconds from sending the key to the terminal showing its effect."""
    start = time.perf_counter()
    subprocess.run(["tmux", "send-keys", "-t", SESSION, key], check=True)
    until(shown)
    return (time.perf_counter() - start) * 1000


def has(text: str) -> Shown:
    return lambda screen: text in screen


def lacks(text: str) -> Shown:
    return lambda screen: text not in screen


def workers(count: int) -> Shown:
    return lambda screen: len(WORKER_ROW.findall(screen)) == count


EXPLORER_KEYS: list[tuple[str, str, Shown]] = [
    ("help", "?", has("The explorer (the first screen)")),
    ("back from help", "Escape", lambda s: "The explorer (the first screen)" not in s and "1 Queues" in s),
    ("builder", "b", has("Topology preview")),
    ("back from the builder", "Escape", lacks("Topology preview")),
    ("queue detail", "Enter", has("What applies to its messages")),
    ("back from the queue", "Escape", lacks("What applies to its messages")),
    ("exchanges tab", "2", has("amq.topic")),
    ("queues tab", "1", lacks("amq.topic")),
]


def live_keys(screen: str) -> list[tuple[str, str, Shown]]:
    count = len(WORKER_ROW.findall(screen))
    return [
        ("help", "?", has("The explorer (the first screen)")),
        # the flow's title: the ledger's can be under a toast (a notice stays 5 s) long after the screen is back
        ("back to the run", "Escape", lambda s: "The explorer (the first screen)" not in s and "╭─ Message flow" in s),
        ("projector", "P", has("┏━ Message flow")),
        ("every panel", "P", has("╭─ Message flow")),
        ("add a worker", "a", workers(count + 1)),
        ("remove it", "d", workers(count)),
    ]


PLAIN_KEYS: list[tuple[str, str, Shown]] = [
    ("help", "?", has("The explorer (the first screen)")),
    ("back from help", "Escape", lambda s: "The explorer (the first screen)" not in s and "RUNNING 12 s" in s),
    ("projector", "P", lacks("added a worker")),
    ("every panel", "P", has("added a worker")),
]
# The live run's keys, and the plain app's key making the same kind of change
LIVE_AGAINST_PLAIN = {
    "help": "help",
    "back to the run": "back from help",
    "projector": "projector",
    "every panel": "every panel",
    "add a worker": "add a row",
    "remove it": "remove it",
}


@contextmanager
def terminal(command: list[str]) -> Iterator[None]:
    subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    subprocess.run(["tmux", "new-session", "-d", "-s", SESSION, "-x", "140", "-y", "40", *command], check=True)
    try:
        yield
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)


def timed(keys: list[tuple[str, str, Shown]], into: dict[str, list[float]]) -> None:
    for name, key, shown in keys:
        into.setdefault(name, []).append(press(key, shown))
        time.sleep(0.2)  # a user's pace: the next key after the screen settled


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 2 else max(values)


def report(title: str, idle: Timings, load: Timings) -> None:
    print(f"\n{title}: milliseconds from send-keys to the effect on screen, p50 / p95 / max")
    print(f"  {'key':<24} {'idle':>22}   {'under load':>22}   p95 load/idle")
    for name in idle:
        a, b = idle[name], load[name]
        spread_a = f"{statistics.median(a):5.0f} / {p95(a):5.0f} / {max(a):5.0f}"
        spread_b = f"{statistics.median(b):5.0f} / {p95(b):5.0f} / {max(b):5.0f}"
        print(f"  {name:<24} {spread_a:>22}   {spread_b:>22}   {p95(b) / p95(a):5.2f}")


def beside_a_run(
    rounds: int,
    connect: list[str],
    scenario: Path,
    keys: list[tuple[str, str, Shown]],
    going: Callable[[], object],
    gone: Callable[[], object],
) -> tuple[Timings, Timings, list[float]]:
    """The keys each round idle and beside a headless full-speed run, which first alternating; the load average at
    each loaded round. `going` waits for the run to be under way, `gone` for the screen to be back to idle."""
    idle: Timings = {}
    load: Timings = {}
    loads = []
    for n in range(rounds):
        for phase in ("idle", "load") if n % 2 == 0 else ("load", "idle"):
            if phase == "idle":
                timed(keys, idle)
                continue
            run = subprocess.Popen([LAB, "run", str(scenario), *connect], stdout=subprocess.DEVNULL)
            try:
                going()
                timed(keys, load)
                loads.append(os.getloadavg()[0])
            finally:
                run.terminate()  # Ctrl-C's path: it stops, drains and cleans up
                run.wait(timeout=60)
            gone()
    return idle, load, loads


def explorer(node: rabbitmq_node.PrivateNode, connect: list[str], rounds: int, scenario: Path) -> None:
    queue = f"{node.management_url}api/queues/%2F/{QUEUE}"
    httpx.put(queue, json={"durable": False}, auth=("guest", "guest")).raise_for_status()
    with terminal([LAB, *connect]):
        until(has(QUEUE))  # the first row, before the run's lab.* queues: Enter opens it
        idle, load, loads = beside_a_run(
            rounds,
            connect,
            scenario,
            EXPLORER_KEYS,
            going=lambda: until(has("lab."), timeout=60),  # the run's queue listed: it is going
            gone=lambda: until(lacks("lab."), timeout=60),
        )
    httpx.delete(queue, auth=("guest", "guest")).raise_for_status()
    report(f"Explorer, {rounds} rounds; load: a full-speed run beside it (load average {max(loads):.2f})", idle, load)


def live_run(connect: list[str], rounds: int, scenario: Path, processes: str) -> tuple[Timings, Timings]:
    idle: Timings = {}
    load: Timings = {}
    loads = []
    with terminal([LAB, "build", str(scenario), *connect, "--processes", processes]):
        until(has("Topology preview"))
        subprocess.run(["tmux", "send-keys", "-t", SESSION, "C-r"], check=True)
        until(has("RUNNING"))
        pace: dict[str, list[float]] = {"pause": [], "resume": []}
        for n in range(rounds):
            for phase in ("load", "idle") if n % 2 == 0 else ("idle", "load"):
                if phase == "idle":
                    pace["pause"].append(press("Space", has("PAUSED")))
                    time.sleep(1)  # the backlog drained: idle
                    timed(live_keys(pane()), idle)
                    pace["resume"].append(press("Space", has("RUNNING")))
                else:
                    time.sleep(1)
                    timed(live_keys(pane()), load)
                    loads.append(os.getloadavg()[0])
        subprocess.run(["tmux", "send-keys", "-t", SESSION, "s"], check=True)
        until(has("FINISHED"), timeout=60)
    where = "in the run's own process" if processes == "0" else f"in the processes of --processes {processes}"
    title = f"Live run, {rounds} rounds; load: the run at full speed, its clients {where}"
    title += f" (load average {max(loads):.2f})"
    report(title, idle, load)
    print(f"  pause (from full speed) p50 {statistics.median(pace['pause']):.0f} ms, max {max(pace['pause']):.0f} ms;"
          f" resume p50 {statistics.median(pace['resume']):.0f} ms, max {max(pace['resume']):.0f} ms")  # fmt: skip
    return idle, load


def plain_textual(
    node: rabbitmq_node.PrivateNode, connect: list[str], rounds: int, scenario: Path
) -> tuple[Timings, Timings]:
    with terminal(PLAIN):
        widgets = re.search(r"ready: (\d+) widgets", until(has("ready:"))).group(1)  # type: ignore[union-attr]
        rows = len(WORKER_ROW.findall(pane()))
        keys = [*PLAIN_KEYS, ("add a row", "a", workers(rows + 1)), ("remove it", "d", workers(rows))]
        idle, load, loads = beside_a_run(rounds, connect, scenario, keys, going=lambda: going(node), gone=lambda: None)
    report(f"A plain Textual app shaped like the live run ({widgets} widgets), {rounds} rounds; load: a full-speed "
           f"run beside it (load average {max(loads):.2f})", idle, load)  # fmt: skip
    return idle, load


def going(node: rabbitmq_node.PrivateNode) -> None:
    """Until a run's queue has its consumers, and a second more: the run is at full speed."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        queues = httpx.get(f"{node.management_url}api/queues", auth=("guest", "guest")).json()
        if any(q["name"].startswith("lab.") and q.get("consumers", 0) for q in queues):
            time.sleep(1)
            return
        time.sleep(0.1)
    raise TimeoutError("the full-speed run never started")


def against_plain(live: tuple[Timings, Timings], plain: tuple[Timings, Timings]) -> None:
    print("\nThe live run against the plain Textual app, the same kind of change: p95 in ms, and the ratio")
    print(f"  {'key':<24} {'idle':>22}   {'under load':>22}")
    for key, plain_key in LIVE_AGAINST_PLAIN.items():
        shown = []
        for lab_side, plain_side in zip(live, plain, strict=True):
            a, b = p95(lab_side[key]), p95(plain_side[plain_key])
            shown.append(f"{a:5.0f} / {b:5.0f}  {a / b:4.2f}")
        print(f"  {key:<24} {shown[0]:>22}   {shown[1]:>22}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--version", choices=rabbitmq_node.VERSIONS, default="3.10")
    parser.add_argument("--processes", default="0", help="the live run's --processes (default 0: its own one process)")
    parts = ("explorer", "live", "plain")
    parser.add_argument("--only", nargs="+", choices=parts, default=parts, help="some of the three parts")
    args = parser.parse_args()
    node = rabbitmq_node.start("amqplab-bench-tui@localhost", args.version)
    try:
        connect = ["--url", node.amqp_url, "--management-url", node.management_url, "--refresh", "1"]
        with tempfile.TemporaryDirectory() as folder:
            scenario = Path(folder) / "full-speed.toml"
            scenario.write_text(FULL_SPEED)
            print(f"RabbitMQ {node.version}, amqp-lab in tmux at 140x40, refresh 1 s")
            if "explorer" in args.only:
                explorer(node, connect, args.rounds, scenario)
            live = plain = None
            if "live" in args.only:
                live = live_run(connect, args.rounds, scenario, args.processes)
            if "plain" in args.only:
                plain = plain_textual(node, connect, args.rounds, scenario)
            if live and plain:
                against_plain(live, plain)
    finally:
        rabbitmq_node.stop(node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
