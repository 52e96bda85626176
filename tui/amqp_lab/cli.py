"""The amqp-lab command: the terminal lab, and `check` to see what can be reached."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from amqp_lab import __version__
from amqp_lab.config import (
    DEFAULT_AMQP_URL,
    ENV,
    ENV_CONFIG,
    ENV_PROFILE,
    FILE_KEYS,
    Settings,
    SettingsError,
    parse_amqp_url,
    resolve,
)
from amqp_lab.embedded.process import BrokerProcess, BrokerStartFailed, answers
from amqp_lab.masking import mask_text, mask_url
from amqp_lab.workshop import EXPERIMENTS
from amqp_lab.workshop import experiment as find_experiment

if TYPE_CHECKING:
    from amqp_lab.embedded.server import BrokerOptions

EXIT_OK = 0
EXIT_PARTIAL = 1  # AMQP works, the management API does not
EXIT_FAILED = 2  # bad input, or the broker cannot be reached
EXIT_UNCLEAN = 3  # a run ended with the broker out of reach: its report is written, its objects may be left
EXIT_INTERRUPTED = 130  # stopped with Ctrl-C (or SIGTERM) before its end: cleaned up and reported all the same

DESCRIPTION = """\
An interactive terminal lab for AMQP 0-9-1 routing topologies on RabbitMQ.

Run without a command to open the lab on the broker explorer: live totals and
rates, queues, exchanges and their bindings, connections, channels and
consumers; Enter on a queue shows why its consumers are slow and lets you peek,
purge or delete; on an exchange, t taps it, k says which queues a routing key
reaches, p publishes a test message. b builds and runs a scenario, w opens the
workshop. Start with `amqp-lab check` to see what it can reach.
"""

EPILOG = f"""\
commands:
  (none)      open the lab in the terminal
  check       connect once, print what could be reached, exit 0 (all), 1 (AMQP only) or 2 (nothing)
  build       open the lab on the scenario builder (a preset or a TOML file), run it with ctrl+r
  workshop    open the lab on a guided experiment, step by step
  run         run a scenario headless (presets: rpc, map-reduce, workers, pub-sub, custom, or a TOML file)
  scenarios   list the built-in scenarios
  cleanup     delete what crashed runs left on the broker (lab.<run-id>.* objects the lab marked), after asking

examples:
  amqp-lab check
  amqp-lab build pub-sub
  amqp-lab workshop handler-hangs
  amqp-lab run workers --duration 30s --set workers.workers=5 --json report.json
  amqp-lab --url amqp://user:pass@rabbit.example:5672/ --read-only
  amqp-lab --url amqps://user:pass@node1:5671/ --url amqps://user:pass@node2:5671/ --ca-file ca.pem
  amqp-lab --profile staging

settings come from flags, then the environment, then the config file, then defaults:
  {ENV["amqp_urls"]:<26} AMQP URL; several nodes of a cluster separated by commas
  {ENV["management_url"]:<26} management API URL(s) (default: each AMQP host, port 15672, same user)
  {ENV["vhost"]:<26} virtual host (default: the URL's path, else /)
  {ENV["ca_file"]:<26} CA bundle for amqps:// and https://
  {ENV["cert_file"]:<26} client certificate;  {ENV["key_file"]}: its key
  {ENV["verify"]:<26} false to skip TLS certificate checks
  {ENV["read_only"]:<26} true: never change anything on the broker
  {ENV["refresh"]:<26} seconds between statistics refreshes
  {ENV["timeout"]:<26} seconds to wait for the broker
  {ENV["heartbeat"]:<26} AMQP heartbeat in seconds (0: off)
  {ENV["agents"]:<26} agents that runs hand their clients to (default 0: none)
  {ENV_PROFILE:<26} profile to use from the config file
  {ENV_CONFIG:<26} config file (default: the user's config dir, amqp-lab/config.toml)

config file (TOML):
  amqp_url = "amqp://guest:guest@localhost:5672/"
  default_profile = "local"
  [profiles.staging]
  amqp_url = ["amqps://me:secret@node1:5671/", "amqps://me:secret@node2:5671/"]
  read_only = true

default broker: {DEFAULT_AMQP_URL}
"""


def build_parser() -> argparse.ArgumentParser:
    connection = argparse.ArgumentParser(add_help=False)
    group = connection.add_argument_group("connection")
    # SUPPRESS keeps unset flags out of the namespace, so lower layers can fill them in.
    quiet = argparse.SUPPRESS
    group.add_argument(
        "--url",
        dest="amqp_url",
        action="append",
        metavar="URL",
        default=quiet,
        help="AMQP URL, amqp:// or amqps://; repeat for the nodes of a cluster, tried in order",
    )
    group.add_argument(
        "--management-url",
        metavar="URL",
        default=quiet,
        help="management API URL, http(s)://; a cluster's nodes: separate with commas",
    )
    group.add_argument("--vhost", metavar="NAME", default=quiet, help="virtual host")
    group.add_argument("--profile", metavar="NAME", default=quiet, help="named profile from the config file")
    group.add_argument("--config", metavar="FILE", default=quiet, help="config file to read")
    group.add_argument("--ca-file", metavar="FILE", default=quiet, help="CA bundle to verify the broker with")
    group.add_argument("--cert-file", metavar="FILE", default=quiet, help="client certificate (PEM)")
    group.add_argument("--key-file", metavar="FILE", default=quiet, help="client key (PEM)")
    group.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        default=quiet,
        help="do not verify the broker's TLS certificate (unsafe)",
    )
    group.add_argument(
        "--read-only",
        action="store_true",
        default=quiet,
        help="never change anything on the broker: no peek, tap, publish, purge, delete or run",
    )
    group.add_argument(
        "--refresh",
        metavar="SECONDS",
        default=quiet,
        help="seconds between statistics polls, at least 1 (default 5, RabbitMQ's own interval)",
    )
    group.add_argument("--timeout", metavar="SECONDS", default=quiet, help="broker answer timeout (default 5)")
    group.add_argument(
        "--heartbeat",
        metavar="SECONDS",
        default=quiet,
        help="AMQP heartbeat asked of the broker (default 60, RabbitMQ's): a dead or stalled connection is "
        "noticed after about 3 x (SECONDS + 1)",
    )
    group.add_argument(
        "--agents",
        metavar="N",
        default=quiet,
        help="runs hand their simulated clients to N `amqp-lab agent` processes (on other machines) through "
        "the broker, instead of running them here",
    )
    group.add_argument("--log-file", metavar="FILE", default=quiet, help="write a debug log (passwords masked)")

    parser = argparse.ArgumentParser(
        prog="amqp-lab",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[connection],
    )
    parser.add_argument("--version", action="version", version=f"amqp-lab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="")
    commands.add_parser(
        "check",
        parents=[connection],
        help="print what could be reached and exit",
        description="Connect once over AMQP and to the management API, print what was reached, "
        "and exit 0 (all reached), 1 (AMQP only) or 2 (AMQP not reached, or bad settings).",
    )
    run = commands.add_parser(
        "run",
        parents=[connection],
        help="run a scenario without the TUI",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a scenario headless: declare its topology under lab.<run-id>., run its\n"
        "simulated clients, print live progress and a summary, delete everything it declared\n"
        "(also on Ctrl-C).\n\n"
        "Exit 0 when every expectation held (by default: nothing lost), 1 when one failed or\n"
        "something was left on the broker, 2 for bad input or an unreachable broker, 3 when the\n"
        "broker was out of reach at the end: the report is written and says what may be left\n"
        "(`amqp-lab cleanup` removes it once the broker is back), 130 when stopped by Ctrl-C\n"
        "before its end (it still cleans up and writes its report, which says interrupted).",
        epilog="examples:\n"
        "  amqp-lab run rpc\n"
        "  amqp-lab run rpc --set rpc.reply_queue=direct-reply-to --set rpc.handlers=0\n"
        "  amqp-lab run map-reduce --set map-reduce.policy=wait-for-all --duration 20s\n"
        "  amqp-lab run my-topology.toml --json report.json\n\n"
        "keys for --set are the scenario file's keys, dotted: see docs/scenarios.md",
    )
    run.add_argument(
        "scenario", metavar="SCENARIO", help="a preset (rpc, map-reduce, workers, pub-sub, custom) or a TOML file"
    )
    run.add_argument(
        "--duration", metavar="TIME", help="how long producers run, e.g. 30s or 2m (default: the scenario's)"
    )
    run.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a scenario key"
    )
    run.add_argument("--json", dest="report", metavar="FILE", help="write the report as JSON")
    lab = commands.add_parser(
        "build",
        parents=[connection],
        help="open the scenario builder in the TUI",
        description="Open the TUI on the scenario builder: pick a pattern or start from a file, edit its options "
        "(each with what switching it shows), preview the topology, save it as TOML, run it with ctrl+r.",
    )
    lab.add_argument("scenario", metavar="SCENARIO", nargs="?", default="rpc", help="a preset or a TOML file")
    workshop = commands.add_parser(
        "workshop",
        parents=[connection],
        help="guided experiments in the TUI",
        description="Open the TUI on a guided experiment: a run with a side panel that says what to look at; "
        "n goes to the next step. Without a name, pick one from the list.",
    )
    workshop.add_argument(
        "experiment", metavar="EXPERIMENT", nargs="?", help=f"one of: {', '.join(e.key for e in EXPERIMENTS)}"
    )
    commands.add_parser(
        "scenarios", help="list the built-in scenarios", description="List the built-in scenarios, one line each."
    )
    cleanup_command = commands.add_parser(
        "cleanup",
        parents=[connection],
        help="delete what crashed runs left behind",
        description="Find the queues and exchanges that runs of amqp-lab declared and left behind: named "
        "lab.<run-id>.*, marked with that run id (argument amqp-lab-run), and whose run is no longer connected. "
        "List them with the messages each queue holds, ask, then delete them. Runs still going, and anything "
        "named lab.* that the lab did not mark, are left alone. Needs the management API. Exit 0 when done "
        "(or nothing to do), 1 when not confirmed, 2 when the broker cannot be reached.",
    )
    cleanup_command.add_argument("--yes", action="store_true", help="delete without asking")
    agent = commands.add_parser(
        "agent",
        parents=[connection],
        help="run simulated clients for runs started elsewhere (load from several machines)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Wait on the broker for runs started with --agents N (by `amqp-lab run` or the TUI,\n"
        "on any machine), take a share of their simulated clients, and report what they do,\n"
        "through the exchange amqp-lab.control. One run at a time; until Ctrl-C.",
        epilog="examples:\n"
        "  amqp-lab agent --url amqp://lab:secret@broker:5672/\n"
        "  amqp-lab run workers --agents 2 --url amqp://lab:secret@broker:5672/   # on the coordinating machine",
    )
    agent.add_argument("--name", metavar="NAME", help="how runs and screens call it (default: host name and a tag)")
    broker = commands.add_parser(
        "broker",
        help="run the embedded broker (no RabbitMQ needed)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run amqp-lab's embedded AMQP 0-9-1 broker and its management API in the foreground,\n"
        "until Ctrl-C. It follows RabbitMQ's rules for what it supports and refuses the rest\n"
        "(streams, priorities, ...) saying so; it keeps nothing on disk.\n"
        "It listens on loopback only, unless --bind says otherwise, and then it wants a password\n"
        "that is not the default one.",
        epilog="examples:\n"
        "  amqp-lab broker\n"
        "  amqp-lab broker --port 5673 --management-port 15673\n"
        "  AMQP_LAB_BROKER_PASSWORD=s3cret amqp-lab broker --bind 0.0.0.0 --user lab",
    )
    broker.add_argument(
        "--bind", metavar="ADDRESS", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    broker.add_argument(
        "--port", metavar="PORT", type=int, default=5672, help="AMQP port (default 5672, 0: a free one)"
    )
    broker.add_argument(
        "--management-port", metavar="PORT", type=int, default=15672, help="management API port (default 15672)"
    )
    broker.add_argument("--user", metavar="NAME", default="guest", help="the one user (default guest)")
    broker.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="messages it may hold before publishers are blocked (connection.blocked), as RabbitMQ's memory alarm: "
        "256MB, 1GB, or a fraction of this machine's memory (default 0.4)",
    )
    broker.add_argument(
        "--max-message-size",
        metavar="SIZE",
        help="largest message it accepts, as RabbitMQ's max_message_size: 16MB, 128MiB (default 16MiB, "
        "RabbitMQ 4's; at most 512MiB)",
    )
    tls = broker.add_argument_group(
        "TLS", "amqps and https listeners beside the plain ones, as RabbitMQ's listeners.ssl and management.ssl"
    )
    tls.add_argument("--tls-cert", metavar="FILE", help="the server's certificate (PEM); turns the TLS listeners on")
    tls.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")
    tls.add_argument(
        "--tls-ca", metavar="FILE", help="CA to check the certificates clients may present (they need not present one)"
    )
    tls.add_argument("--amqps-port", metavar="PORT", type=int, default=5671, help="AMQP over TLS (default 5671)")
    tls.add_argument(
        "--https-port", metavar="PORT", type=int, default=15671, help="management API over TLS (default 15671)"
    )
    broker.add_argument(
        "--until-stdin-closes",
        action="store_true",
        help="stop when standard input ends (how amqp-lab ties a broker it starts to its own life)",
    )
    broker.add_argument(
        "--password",
        metavar="SECRET",
        default=os.environ.get("AMQP_LAB_BROKER_PASSWORD", "guest"),
        help="its password (default guest, or $AMQP_LAB_BROKER_PASSWORD, which stays out of the process list)",
    )
    return parser


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
    if report is not None and not report.parent.is_dir():
        errors.print(
            Text(f"amqp-lab run: --json {args.report}: folder {report.parent} does not exist", style="red"),
            soft_wrap=True,
        )
        return EXIT_FAILED
    try:
        with broker_for(settings, errors) as (settings, _):
            document = asyncio.run(run_headless(scenario, settings, console))
    except (AmqpError, RunError) as exc:
        errors.print(Text(f"amqp-lab run: {exc}", style="red"), soft_wrap=True)
        return EXIT_FAILED
    if report is not None:
        report.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        console.print(f"report written to {report}")
    if document["cleanup_error"]:
        return EXIT_UNCLEAN
    if document["interrupted"]:
        return EXIT_INTERRUPTED
    return EXIT_OK if document["passed"] else EXIT_PARTIAL


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
    if args.command == "build":
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

    with broker_for(settings, errors) as (settings, embedded):
        app = make_app(settings, builder=builder, experiment=experiment)
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

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        await Agent(settings, args.name, say=lambda line: console.print(Text(line))).serve(stop)

    try:
        asyncio.run(serve())
    except AmqpError as exc:
        console.print(Text(f"amqp-lab agent: {exc}", style="red"), soft_wrap=True)
        return EXIT_FAILED
    return 0


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
        return run_tui(args, settings, error_console)
    except SettingsError as exc:
        error_console.print(Text(f"amqp-lab: {exc}", style="red"), soft_wrap=True)
        return EXIT_FAILED
    except BrokerStartFailed as exc:
        error_console.print(Text(f"amqp-lab: the embedded broker did not start: {exc}", style="red"), soft_wrap=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
