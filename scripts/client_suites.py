#!/usr/bin/env python3
"""Run aio-pika's and aiormq's own test suites against RabbitMQ and the embedded broker, side by side.

For the versions requirements.lock pins, it downloads each client's source release (`pip download
--no-binary`, which ships its tests), installs the suites' test tools in a venv of its own, starts a private
RabbitMQ node and the embedded broker configured as the suites' own Docker image is (TLS on both with the
suite's certificates, 128 MiB max message size), runs each suite on each broker at the same time (both see
the same load), and prints:

  - a table: passed, failed, errors, skipped per suite and broker;
  - every test whose outcome differs between the brokers, run again (--reruns) on both to tell a flaky
    test from a real difference: "fails 3 of 3 on embedded, passes 3 of 3 on RabbitMQ 3.10" is a difference.

It takes about 20 minutes on two cores; it is not part of the default test run. Its table is in
docs/embedded-broker.md.

    .venv/bin/python scripts/client_suites.py
    .venv/bin/python scripts/client_suites.py --suite aiormq -k "not stairway" --markdown
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import venv
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import embedded_node
import rabbitmq_node
from amqp_lab.embedded.process import BrokerStartFailed

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent
SUITES = ("aio-pika", "aiormq")
# What the suites' pyproject.toml test groups ask for, beyond pytest and the clients themselves.
TEST_TOOLS = ("pytest", "aiomisc", "aiomisc-pytest", "shortuuid", "timeout-decorator")
# As the suites' Docker image (tests/certs/rabbitmq.conf in aiormq's release) configures RabbitMQ.
MAX_MESSAGE_SIZE = 128 * 1024 * 1024
RABBITMQ_CONFIG = {
    "3.10": f"max_message_size = {MAX_MESSAGE_SIZE}\n",
    "4.0": f"max_message_size = {MAX_MESSAGE_SIZE}\ndeprecated_features.permit.transient_nonexcl_queues = true\n",
}
RUN_TIMEOUT = 3600.0
OUTCOMES = ("passed", "failed", "error", "skipped")
STOPPING = threading.Event()  # Ctrl-C or SIGTERM: the suites are stopped, then the brokers, nothing left running


@dataclass
class Outcomes:
    """One suite's run on one broker: each test's outcome, by pytest node id."""

    suite: str
    broker: str
    tests: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    trouble: str = ""  # pytest itself failed (not a test): its last lines

    def counts(self) -> Counter[str]:
        return Counter(self.tests.values())


def locked_version(name: str) -> str:
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.lower().startswith(f"{name}=="):
            return line.split("==", 1)[1].strip()
    raise SystemExit(f"{name} is not pinned in requirements.lock")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def source_release(name: str, work: Path) -> Path:
    """The client's source release, unpacked: its package and its tests."""
    version = locked_version(name)
    folder = work / f"{name.replace('-', '_')}-{version}"
    if (folder / "tests" / "conftest.py").exists():
        return folder
    say(f"downloading {name} {version}'s source release")
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", name, "-d", str(work)]
    subprocess.run([*pip, f"{name}=={version}"], check=True, capture_output=True, timeout=600)
    archive = next(work.glob(f"{name.replace('-', '_')}-{version}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    return folder


def suite_venv(work: Path) -> Path:
    """A venv with the locked clients and the suites' test tools; the lab's own venv is left as it is."""
    python, done = work / "venv" / "bin" / "python", work / "venv" / "installed"
    if done.exists():
        return python
    say("making the suites' venv")
    venv.create(work / "venv", with_pip=True, clear=True)
    clients = [f"{name}=={locked_version(name)}" for name in SUITES]
    install = [str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "requirements.lock")]
    installed = subprocess.run([*install, *clients, *TEST_TOOLS], capture_output=True, text=True, timeout=900)
    if installed.returncode != 0:
        raise SystemExit(f"could not install the suites' tools:\n{installed.stdout}{installed.stderr}")
    done.touch()
    return python


@contextlib.contextmanager
def broker(name: str, certificates: Path) -> Iterator[tuple[int, int]]:
    """A broker as the suites' image is: (amqp port, amqps port)."""
    if name == embedded_node.VERSION:
        size = ("--max-message-size", str(MAX_MESSAGE_SIZE))
        node = embedded_node.start(tls=certificates, options=size)
        try:
            yield node.amqp_port, node.amqps_port
        finally:
            embedded_node.stop(node)
        return
    label = f"amqplab-suites-{name.replace('.', '')}-{os.getpid()}@localhost"
    rabbit = rabbitmq_node.start(label, name, tls=certificates, extra_config=RABBITMQ_CONFIG[name])
    try:
        yield rabbit.amqp_port, rabbit.amqps_port
    finally:
        rabbitmq_node.stop(rabbit)


def run_suite(
    python: Path, folder: Path, ports: tuple[int, int], report: Path, selection: list[str]
) -> tuple[float, str]:
    """pytest in the suite's folder, its broker fixtures pointed at ours; seconds taken, and pytest's own
    trouble (not a test's failure), if any."""
    env = dict(os.environ, PYTHONPATH=f"{SCRIPTS}{os.pathsep}{folder}")
    env.update(CLIENT_SUITE_AMQP_PORT=str(ports[0]), CLIENT_SUITE_AMQPS_PORT=str(ports[1]))
    command = [str(python), "-m", "pytest", "-p", "client_suite_broker", "-p", "no:cacheprovider", "-q"]
    command += ["--junitxml", str(report), *selection]
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
        while process.poll() is None:
            if STOPPING.wait(1) or time.monotonic() - started > RUN_TIMEOUT:
                process.kill()
                process.wait()
                return time.monotonic() - started, "stopped"
        output.seek(0)
        lines = output.read().splitlines()
    # 0: all passed; 1: some failed. Anything else is pytest's own trouble (a usage error, an internal error).
    trouble = "" if process.returncode in (0, 1) else "\n".join(lines[-15:])
    return time.monotonic() - started, trouble


def outcomes_of(report: Path) -> dict[str, str]:
    tests: dict[str, str] = {}
    if not report.exists():
        return tests
    for case in ElementTree.parse(report).iter("testcase"):
        node = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        kinds = {child.tag for child in case}
        # An error in teardown comes beside the test's own outcome: the test did not pass cleanly.
        outcome = (
            "error"
            if "error" in kinds
            else "failed"
            if "failure" in kinds
            else "skipped"
            if "skipped" in kinds
            else "passed"
        )
        if tests.get(node) not in ("error", "failed"):
            tests[node] = outcome
    return tests


def run_everywhere(
    python: Path, suite: str, folder: Path, brokers: list[str], work: Path, selection: list[str], label: str
) -> dict[str, Outcomes]:
    """The suite on every broker at once: both sides see the same load."""
    certificates = source_release("aiormq", work) / "tests" / "certs"

    def on(name: str) -> Outcomes:
        report = work / f"{suite}-{name}-{label}.xml"
        report.unlink(missing_ok=True)
        with broker(name, certificates) as ports:
            seconds, trouble = run_suite(python, folder, ports, report, selection)
        return Outcomes(suite, name, outcomes_of(report), seconds, trouble)

    with ThreadPoolExecutor(len(brokers)) as pool:
        try:
            return dict(zip(brokers, pool.map(on, brokers), strict=True))
        except BaseException:
            STOPPING.set()  # each thread stops its suite, then its broker, before the pool lets go
            raise


def differences(results: dict[str, Outcomes], reference: str, other: str) -> list[str]:
    """Tests that pass on one broker and not on the other (skips on both sides are not a difference)."""
    first, second = results[reference].tests, results[other].tests
    return sorted(
        node
        for node in set(first) | set(second)
        if (first.get(node) == "passed") != (second.get(node) == "passed")
        and {first.get(node), second.get(node)} != {"skipped"}
    )


def table(results: list[Outcomes], markdown: bool) -> str:
    header = ("suite", "broker", *OUTCOMES, "total", "minutes")
    rows = [
        (
            r.suite,
            r.broker if r.broker == embedded_node.VERSION else f"RabbitMQ {r.broker}",
            *(str(r.counts()[o]) for o in OUTCOMES),
            str(len(r.tests)),
            f"{r.seconds / 60:.1f}",
        )
        for r in results
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in (header, *rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=SUITES, action="append", help="one suite (default: both)")
    parser.add_argument(
        "--rabbitmq", default="3.10", choices=rabbitmq_node.VERSIONS, help="the RabbitMQ to compare with (default 3.10)"
    )
    parser.add_argument("--reruns", type=int, default=2, help="runs again of each differing test, on both (default 2)")
    parser.add_argument("-k", dest="keyword", help="only the tests this pytest -k expression selects")
    parser.add_argument("--markdown", action="store_true", help="the table as Markdown, for docs/embedded-broker.md")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "amqp-lab" / "client-suites",
        help="where the releases, the venv and the reports are kept (default ~/.cache/amqp-lab/client-suites)",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C
    try:
        return compare(args)
    except KeyboardInterrupt:
        say("stopped; the brokers it started are stopped too")
        return 130
    except (RuntimeError, BrokerStartFailed, OSError, subprocess.SubprocessError) as exc:
        say(f"client_suites: {exc}")
        return 2


def compare(args: argparse.Namespace) -> int:
    work: Path = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    brokers = [args.rabbitmq, embedded_node.VERSION]
    selection = ["-k", args.keyword] if args.keyword else []
    python = suite_venv(work)
    results: list[Outcomes] = []
    differing: list[str] = []
    for suite in args.suite or SUITES:
        folder = source_release(suite, work)
        say(f"running {suite}'s tests on {' and '.join(brokers)}")
        by_broker = run_everywhere(python, suite, folder, brokers, work, selection, "all")
        results += by_broker.values()
        for outcome in by_broker.values():
            if outcome.trouble:
                say(f"{suite} on {outcome.broker}: pytest could not run the suite:\n{outcome.trouble}")
        nodes = differences(by_broker, *brokers)
        tally = {b: Counter({node: by_broker[b].tests.get(node) == "passed" for node in nodes}) for b in brokers}
        for rerun in range(args.reruns):
            if not nodes:
                break
            say(f"running the {len(nodes)} differing tests of {suite} again ({rerun + 1} of {args.reruns})")
            again = run_everywhere(python, suite, folder, brokers, work, nodes, f"rerun{rerun}")
            for b in brokers:
                tally[b].update({node: again[b].tests.get(node) == "passed" for node in nodes})
        runs = 1 + (args.reruns if nodes else 0)
        for node in nodes:
            passes = {b: tally[b][node] for b in brokers}
            verdict = {(runs, 0): "differs", (0, runs): "better on embedded"}.get(
                (passes[brokers[0]], passes[brokers[1]]), "flaky"
            )
            counts = ", ".join(f"passes {passes[b]} of {runs} on {b}" for b in brokers)
            differing.append(f"{verdict:<18} {suite} {node}: {counts}")
    print(table(results, args.markdown))
    print()
    print("tests whose outcome differs between the brokers:" if differing else "no test's outcome differs")
    for line in differing:
        print("  " + line)
    return 1 if any(line.startswith("differs") for line in differing) else 0


if __name__ == "__main__":
    sys.exit(main())
