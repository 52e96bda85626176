"""The amqp-lab command: what each of its commands does (the options and their help are `arguments.py`'s)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from amqp_lab import __version__, event_loop
from amqp_lab.arguments import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_UNCLEAN,
    build_parser,
)
from amqp_lab.config import (
    FILE_KEYS,
    Settings,
    SettingsError,
    parse_amqp_url,
    resolve,
)
from amqp_lab.embedded.process import BrokerProcess, BrokerStartFailed, answers
from amqp_lab.masking import mask_text, mask_url
from amqp_lab.workshop import experiment as find_experiment

if TYPE_CHECKING:
    from amqp_lab.embedded.server import BrokerOptions
    from amqp_lab.engine.snapshot import RunSnapshot


def settings_from(args: argparse.Namespace) -> Settings:
    values: dict[str, Any] = vars(args)
    flags = {key: values.get(key) for key in FILE_KEYS}
    return resolve(flags, config_file=values.get("config"), profile=values.get("profile"))


class _MaskingFilter(logging.Filter):
    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage(), self.secrets)
        record.args = None
        return True


def setup_logging(log_file: str | None, settings: Settings | None) -> None:
    """Libraries log to stderr by default, which would tear the TUI: log to a file or nowhere."""
    root = logging.getLogger()
    root.handlers.clear()
    if not log_file:
        root.addHandler(logging.NullHandler())
        return
    handler = logging.FileHandler(Path(log_file).expanduser(), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_MaskingFilter(settings.secrets() if settings else ()))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)


def check(settings: Settings, console: Console) -> int:
    from amqp_lab.broker.probe import probe

    result = asyncio.run(probe(settings))
    ok, bad = Text("ok    ", style="bold green"), Text("FAILED", style="bold red")
    if result.amqp_ok and result.endpoint is not None:
        line = Text.assemble("AMQP        ", ok, "  ", result.endpoint.display(), f"  vhost {settings.vhost}")
    else:
        line = Text.assemble("AMQP        ", bad, "  ", str(result.amqp_error))
    console.print(line, soft_wrap=True)
    if result.overview is not None:
        o = result.overview
        console.print(Text.assemble("management  ", ok, "  ", settings.management_display), soft_wrap=True)
        where = f"node {o.node}" + (f", cluster {o.cluster_name}" if o.cluster_name else "")
        if o.default_queue_type:
            where += f", default queue type {o.default_queue_type}"
        runtime = f" on Erlang {o.erlang_version}" if o.erlang_version else ""
        console.print(
            Text(
                f"broker      {o.product} {o.version}{runtime}, {where}; {o.queues} queues, {o.connections} connections"
            ),
            soft_wrap=True,
        )
    else:
        console.print(Text.assemble("management  ", bad, "  ", str(result.management_error)), soft_wrap=True)
        if result.amqp_ok:
            console.print("            the lab works without it, but shows no queue list, totals or rates")
    if settings.read_only:
        console.print("read-only   on: amqp-lab will change nothing on this broker")
    if not result.amqp_ok:
        return EXIT_FAILED
    return EXIT_OK if result.management_ok else EXIT_PARTIAL


def run_scenario(args: argparse.Namespace, settings: Settings, console: Console, errors: Console) -> int:
    from amqp_lab.broker.errors import AmqpError
    from amqp_lab.engine.errors import RunError
    from amqp_lab.headless import run_headless
    from amqp_lab.scenario.files import ScenarioError, load

    # --duration is the scenario's own duration, so the report states the one that ran, bounded and checked alike.
    overrides = [*args.overrides, *([f"duration={args.duration}"] if args.duration else [])]
    try:
        scenario = load(args.scenario, overrides)
    except ScenarioError as exc:
        errors.print(Text(f"amqp-lab run: {exc}", style="red"), soft_wrap=True)
        return EXIT_FAILED
    report = Path(args.report).expanduser() if args.report else None
    record = Path(args.record).expanduser() if args.record else None
    if folder_missing("run", {"--json": report, "--record": record}, errors):
        return EXIT_FAILED
    latest = Latest()
    try:
        with metrics_endpoint(args.metrics_port, latest, console), broker_for(settings, errors) as (settings, _):
            document = event_loop.run(run_headless(scenario, settings, console, record, listeners=[latest.take]))
    except (AmqpError, RunError) as exc:
        errors.print(Text(f"amqp-lab run: {exc}", style="red"), soft_wrap=True)
        return EXIT_FAILED
    if report is not None:
        report.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        console.print(f"report written to {report}")
    if record is not None:
        console.print(f"recording written to {record}: amqp-lab replay {record}")
    if document["cleanup_error"]:
        return EXIT_UNCLEAN
    if document["interrupted"]:
        return EXIT_INTERRUPTED
    return EXIT_OK if document["passed"] else EXIT_PARTIAL


def folder_missing(command: str, outputs: dict[str, Path | None], errors: Console) -> bool:
    """Whether an output file given by a flag has no folder to go in: said before any work, not after it."""
    for flag, path in outputs.items():
        if path is not None and not path.parent.is_dir():
            errors.print(
                Text(f"amqp-lab {command}: {flag} {path}: folder {path.parent} does not exist", style="red"),
                soft_wrap=True,
            )
            return True
    return False


def replay(path: Path, errors: Console) -> int:
    from amqp_lab.engine.recording import RecordingError, read
    from amqp_lab.ui.replay_app import ReplayApp

    try:
        recording = read(path)
    except RecordingError as exc:
        errors.print(Text(f"amqp-lab replay: {exc}", style="red"), soft_wrap=True)
        return EXIT_FAILED
    ReplayApp(recording).run()
    return EXIT_OK


def compare(args: argparse.Namespace, console: Console, errors: Console) -> int:
    from amqp_lab.compare import as_document, as_tables
    from amqp_lab.engine.recording import RecordingError, read

    report = Path(args.report).expanduser() if args.report else None
    if folder_missing("compare", {"--json": report}, errors):
        return EXIT_FAILED
    try:
        a, b = read(Path(args.a).expanduser()), read(Path(args.b).expanduser())
    except RecordingError as exc:
        errors.print(Text(f"amqp-lab compare: {exc}", style="red"), soft_wrap=True)
        return EXIT_FAILED
    console.print(as_tables(a, b))
    if report is not None:
        report.write_text(json.dumps(as_document(a, b), indent=2) + "\n", encoding="utf-8")
        console.print(f"comparison written to {report}")
    return EXIT_OK


def list_scenarios(console: Console) -> int:
    from amqp_lab.scenario.files import presets

    for preset in presets():
        console.print(Text.assemble((f"{preset.name:<12}", "bold"), preset.description), soft_wrap=True)
    console.print('\nrun one with: amqp-lab run NAME   (a TOML file may start with preset = "NAME")')
    return EXIT_OK


def cleanup(settings: Settings, console: Console, confirmed: bool) -> int:
    from amqp_lab.broker.errors import AmqpError, ManagementError
    from amqp_lab.engine.cleanup import find_leftovers, remove

    if settings.read_only:
        console.print("read-only mode: cleanup deletes queues and exchanges; drop --read-only to run it")
        return EXIT_FAILED
    try:
        leftovers = asyncio.run(find_leftovers(settings))
        if leftovers.live_runs:
            console.print(f"left alone: run(s) still connected: {', '.join(leftovers.live_runs)}")
        if leftovers.foreign:
            console.print(
                Text(f"left alone, not declared by amqp-lab (no run marker): {', '.join(leftovers.foreign)}"),
                soft_wrap=True,
            )
        if not leftovers.found:
            console.print("nothing to remove: no leftovers of crashed runs")
            return EXIT_OK
        console.print(f"left behind by runs that are over ({len(leftovers.found)}):")
        for leftover in leftovers.found:
            console.print(Text(f"  {leftover}"), soft_wrap=True)
        if not confirmed and not _ask(console, leftovers.messages):
            console.print("nothing removed (confirm with y, or give --yes)")
            return EXIT_PARTIAL
        removed = asyncio.run(remove(settings, leftovers))
    except (AmqpError, ManagementError) as exc:
        console.print(Text(f"amqp-lab cleanup: {exc}", style="red"), soft_wrap=True)
        return EXIT_FAILED
    for line in removed:
        console.print(Text(f"removed {line}"), soft_wrap=True)
    return EXIT_OK


def _ask(console: Console, messages: int) -> bool:
    held = f", and the {messages} message(s) in them," if messages else ""
    try:
        answer = console.input(f"delete these{held}? [y/N] ")
    except EOFError:  # no one to ask (stdin closed or not a terminal with nothing piped in)
        console.print()
        return False
    return answer.strip().lower() in ("y", "yes")


def run_tui(args: argparse.Namespace, settings: Settings, errors: Console) -> int:
    from amqp_lab.scenario.files import ScenarioError, load

    builder = experiment = None
    watch: str | None = None
    served = False
    if args.command == "watch":
        watch, served = args.run or "", args.served
        settings = replace(settings, read_only=True)  # a watcher looks, it never changes the broker
    elif args.command == "build":
        try:
            load(args.scenario)  # a file that does not load is said here, before the screen takes over
        except ScenarioError as exc:
            errors.print(Text(f"amqp-lab: {exc}", style="red"), soft_wrap=True)
            return EXIT_FAILED
        builder = args.scenario
    elif args.command == "workshop" and args.experiment is not None:
        try:
            experiment = find_experiment(args.experiment)
        except KeyError as exc:
            errors.print(Text(f"amqp-lab: {exc.args[0]}", style="red"))
            return EXIT_FAILED
    from amqp_lab.ui.app import make_app

    latest = Latest()
    # A watcher looks at the broker a run is on: a broker of its own would have no run to show.
    broker = contextlib.nullcontext((settings, False)) if watch is not None else broker_for(settings, errors)
    with metrics_endpoint(args.metrics_port, latest, errors), broker as (settings, embedded):
        app = make_app(
            settings, builder=builder, experiment=experiment, watch=watch, served=served, presenting=args.present
        )
        latest.of = lambda: app.run_latest
        if embedded:
            app.call_later(
                app.notify,
                "No broker was configured and nothing answered on localhost:5672: this is amqp-lab's embedded "
                "broker, for this session. Start with --url to use RabbitMQ.",
                title="Embedded broker",
                timeout=12,
            )
        if args.command == "workshop" and experiment is None:
            app.call_later(app.action_workshop)
        app.run()
    return EXIT_OK


class Latest:
    """The newest snapshot of the current run, for the metrics endpoint's thread: taken from a run's listener
    (headless) or read from the app (`of`)."""

    def __init__(self) -> None:
        self.snapshot: RunSnapshot | None = None
        self.of: Callable[[], RunSnapshot | None] | None = None

    def take(self, snapshot: RunSnapshot) -> None:
        self.snapshot = snapshot

    def __call__(self) -> RunSnapshot | None:
        return self.of() if self.of is not None else self.snapshot


@contextlib.contextmanager
def metrics_endpoint(port: int | None, latest: Latest, console: Console) -> Iterator[None]:
    """Serve the run's figures for Prometheus while the block runs (nothing without a port)."""
    if port is None:
        yield
        return
    from amqp_lab.engine.exporter import MetricsEndpoint

    try:
        endpoint = MetricsEndpoint(port, latest)
    except (OSError, OverflowError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SettingsError(f"--metrics-port {port}: cannot serve metrics there: {reason}") from None
    console.print(f"metrics for Prometheus: {endpoint.url}", highlight=False)
    try:
        yield
    finally:
        endpoint.close()


@contextlib.contextmanager
def broker_for(settings: Settings, errors: Console) -> Iterator[tuple[Settings, bool]]:
    """The settings to use, and whether they point at the embedded broker started for this session: when no
    broker is configured and nothing answers on localhost:5672 (it stops on the way out)."""
    if settings.broker_given or answers(5672, settings.primary.host):
        yield settings, False
        return
    broker, embedded = start_embedded(settings, errors)
    try:
        yield embedded, True
    finally:
        broker.stop()


def start_embedded(settings: Settings, errors: Console) -> tuple[BrokerProcess, Settings]:
    broker = BrokerProcess.on_usual_ports()
    broker.start()
    errors.print(
        Text(
            f"amqp-lab: no broker configured and nothing answers on localhost:5672, so the embedded broker runs "
            f"on {mask_url(broker.amqp_url)} (management API {broker.management_url}) until amqp-lab exits. "
            "Give --url (or AMQP_URL) to use RabbitMQ.",
            style="yellow",
        ),
        soft_wrap=True,
    )
    endpoint = parse_amqp_url(broker.amqp_url)
    return broker, replace(settings, endpoints=(endpoint,), management_url=broker.management_url)


def broker_options(args: argparse.Namespace) -> BrokerOptions:
    from amqp_lab.embedded.server import (
        BrokerOptions,
        BrokerSetupError,
        TlsOptions,
        parse_max_message_size,
        parse_memory_limit,
    )

    limits: dict[str, Any] = {}
    if args.memory_limit:
        limits["memory_limit"] = parse_memory_limit(args.memory_limit)
    if args.max_message_size:
        limits["max_message_size"] = parse_max_message_size(args.max_message_size)
    if args.tls_cert or args.tls_key or args.tls_ca:
        if not (args.tls_cert and args.tls_key):
            raise BrokerSetupError("TLS needs both --tls-cert and --tls-key (--tls-ca is optional)")
        limits["tls"] = TlsOptions(args.tls_cert, args.tls_key, args.tls_ca, args.amqps_port, args.https_port)
    return BrokerOptions(args.bind, args.port, args.management_port, args.user, args.password, **limits)


def run_broker(args: argparse.Namespace, console: Console, error_console: Console) -> int:
    from amqp_lab.embedded.server import Broker, BrokerSetupError, serve

    def ready(broker: Broker) -> None:
        console.print(f"amqp-lab embedded broker {__version__}, user {broker.options.user!r}; Ctrl-C stops it")
        bind = broker.options.bind
        console.print(f"  AMQP            amqp://{bind}:{broker.amqp_port}/")
        console.print(f"  management API  http://{bind}:{broker.management_port}/")
        if broker.options.tls is not None:
            console.print(f"  AMQP over TLS   amqps://{bind}:{broker.amqps_port}/")
            console.print(f"  management API  https://{bind}:{broker.https_port}/")

    try:
        options = broker_options(args)
        # asyncio's own loop, never uvloop (event_loop.run): the broker's protocols take asyncio's transports.
        asyncio.run(serve(options, ready, args.until_stdin_closes))
    except BrokerSetupError as exc:
        error_console.print(Text(f"amqp-lab broker: {exc}", style="red"), soft_wrap=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        console.print("stopped; it kept nothing")
    return 0


def run_agent(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    import signal

    from amqp_lab.broker.errors import AmqpError
    from amqp_lab.engine.agent import Agent
    from amqp_lab.parent_link import stop_when_stdin_closes

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        if args.until_stdin_closes:
            stop_when_stdin_closes(stop)
        say = lambda line: console.print(Text(line), soft_wrap=True)  # noqa: E731
        await Agent(settings, args.name, say, for_run=args.for_run).serve(stop)

    try:
        event_loop.run(serve())
    except AmqpError as exc:
        console.print(Text(f"amqp-lab agent: {exc}", style="red"), soft_wrap=True)
        return EXIT_FAILED
    return 0


def serve_lab(args: argparse.Namespace, settings: Settings, console: Console, errors: Console) -> int:
    from amqp_lab.serving import serve

    if not 0 < args.port < 65536:
        errors.print(Text(f"amqp-lab serve: --port {args.port}: a port is 1 to 65535", style="red"))
        return EXIT_FAILED
    try:
        say = lambda said: console.print(Text(said), soft_wrap=True)  # noqa: E731
        serve(settings, args.host, args.port, args.public_url, args.token, args.run, say)
    except OSError as exc:
        errors.print(
            Text(f"amqp-lab serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", style="red")
        )
        return EXIT_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    console = Console(highlight=False)
    error_console = Console(stderr=True, highlight=False)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or argparse's own usage error (exit 2)
        return int(exc.code or 0)
    settings: Settings | None = None
    try:
        settings = settings_from(args)
    except SettingsError as exc:
        error_console.print(Text(f"amqp-lab: {exc}", style="red"), soft_wrap=True)
        return EXIT_FAILED
    try:
        event_loop.loop_factory()  # said now, not when a run starts its loop
    except event_loop.LoopChoiceError as exc:
        error_console.print(Text(f"amqp-lab: {exc}", style="red"), soft_wrap=True)
        return EXIT_FAILED
    try:
        setup_logging(getattr(args, "log_file", None), settings)
    except OSError as exc:
        reason = "it is a folder" if isinstance(exc, IsADirectoryError) else exc.strerror or str(exc)
        if isinstance(exc, FileNotFoundError):
            reason = "its folder does not exist"
        error_console.print(Text(f"amqp-lab: --log-file {args.log_file}: cannot write it: {reason}", style="red"))
        return EXIT_FAILED
    try:
        if args.command == "check":
            return check(settings, console)
        if args.command == "scenarios":
            return list_scenarios(console)
        if args.command == "cleanup":
            return cleanup(settings, console, args.yes)
        if args.command == "broker":
            return run_broker(args, console, error_console)
        if args.command == "agent":
            return run_agent(args, settings, console)
        if args.command == "run":
            return run_scenario(args, settings, console, error_console)
        if args.command == "replay":
            return replay(Path(args.recording).expanduser(), error_console)
        if args.command == "compare":
            return compare(args, console, error_console)
        if args.command == "serve":
            return serve_lab(args, settings, console, error_console)
        return run_tui(args, settings, error_console)
    except SettingsError as exc:
        error_console.print(Text(f"amqp-lab: {exc}", style="red"), soft_wrap=True)
        return EXIT_FAILED
    except BrokerStartFailed as exc:
        error_console.print(Text(f"amqp-lab: the embedded broker did not start: {exc}", style="red"), soft_wrap=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
