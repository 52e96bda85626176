"""The command line: every command and option of `amqp-lab`, its exit codes, and the help that teaches them."""

from __future__ import annotations

import argparse
import os

from amqp_lab import __version__
from amqp_lab.config import (
    DEFAULT_AMQP_URL,
    ENV,
    ENV_CONFIG,
    ENV_PROFILE,
)
from amqp_lab.event_loop import ENV_LOOP
from amqp_lab.workshop import EXPERIMENTS

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
  watch       watch a live run started elsewhere on the same broker, read-only
  serve       the lab in the audience's browsers (textual-serve), each watching the live run, read-only
  replay      replay a recorded run (run --record, R in the live screen) in the terminal, no broker needed
  compare     two recorded runs side by side: the settings that differ, each figure's change
  scenarios   list the built-in scenarios
  cleanup     delete what crashed runs left on the broker (lab.<run-id>.* objects the lab marked), after asking

examples:
  amqp-lab check
  amqp-lab build pub-sub
  amqp-lab workshop handler-hangs --present
  amqp-lab serve                                  (then the audience opens http://127.0.0.1:8000/)
  amqp-lab run workers --duration 30s --set workers.workers=5 --json report.json
  amqp-lab run workers --record run.rec.gz --metrics-port 9187
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
  {ENV["processes"]:<26} local processes that runs spread their clients over (N or auto; default 0)
  {ENV_PROFILE:<26} profile to use from the config file
  {ENV_CONFIG:<26} config file (default: the user's config dir, amqp-lab/config.toml)
  {ENV_LOOP:<26} asyncio: runs on asyncio's own event loop where uvloop is installed too

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
    group.add_argument(
        "--processes",
        metavar="N|auto",
        default=quiet,
        help="runs spread their simulated clients over N processes on this machine, so a run can use every core "
        "(auto: one per core, less one for a broker on this machine beyond two cores; default 0: all here)",
    )
    group.add_argument("--log-file", metavar="FILE", default=quiet, help="write a debug log (passwords masked)")

    exported = argparse.ArgumentParser(add_help=False)
    exported.add_argument(
        "--metrics-port",
        metavar="PORT",
        type=int,
        help="serve the current run's figures for Prometheus on http://127.0.0.1:PORT/metrics (docs/metrics.md)",
    )

    screen = argparse.ArgumentParser(add_help=False)
    screen.add_argument(
        "--present",
        action="store_true",
        help="projector mode: runs show the flow and a few figures large, in a high-contrast theme (P toggles it)",
    )

    parser = argparse.ArgumentParser(
        prog="amqp-lab",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[connection, exported, screen],
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
        parents=[connection, exported],
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
        "  amqp-lab run my-topology.toml --json report.json\n"
        "  amqp-lab run workers --set workers.persistent=false --record transient.rec.gz\n"
        "  amqp-lab run workers --set workers.rate=max --set workers.producers=2 --processes auto\n\n"
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
    run.add_argument(
        "--record",
        metavar="FILE",
        help="record the run (its scenario, the snapshots and every event) for `amqp-lab replay` and "
        "`amqp-lab compare`; e.g. run.rec.gz",
    )
    lab = commands.add_parser(
        "build",
        parents=[connection, exported, screen],
        help="open the scenario builder in the TUI",
        description="Open the TUI on the scenario builder: pick a pattern or start from a file, edit its options "
        "(each with what switching it shows), preview the topology, save it as TOML, run it with ctrl+r.",
    )
    lab.add_argument("scenario", metavar="SCENARIO", nargs="?", default="rpc", help="a preset or a TOML file")
    workshop = commands.add_parser(
        "workshop",
        parents=[connection, exported, screen],
        help="guided experiments in the TUI",
        description="Open the TUI on a guided experiment: a run with a side panel that says what to look at; "
        "n goes to the next step. Without a name, pick one from the list.",
    )
    workshop.add_argument(
        "experiment", metavar="EXPERIMENT", nargs="?", help=f"one of: {', '.join(e.key for e in EXPERIMENTS)}"
    )
    watch = commands.add_parser(
        "watch",
        parents=[connection, screen],
        help="watch a live run someone else started, read-only",
        description="Open the lab read-only on a live run that another amqp-lab (the lab, run or workshop) is "
        "running on the same broker: every panel of the live screen, as it goes, and no control. Without RUN, "
        "the first run that broadcasts, then the next. Esc goes to the broker explorer, read-only too.",
    )
    watch.add_argument("run", metavar="RUN", nargs="?", help="a run id (the live screen's header shows it)")
    watch.add_argument("--served", action="store_true", help=argparse.SUPPRESS)  # amqp-lab serve's own pages
    serve = commands.add_parser(
        "serve",
        parents=[connection],
        help="the lab in browsers: each visitor watches the live run, read-only",
        description="Serve the lab over HTTP (textual-serve): every browser that opens the page gets its own lab, "
        "read-only and locked to this broker, opened on the live run (as amqp-lab watch). On loopback (the "
        "default) anyone on this machine may open it; bound wider, the page needs the access token printed "
        "in its URL.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument("--public-url", metavar="URL", help="the address browsers use, behind a proxy or a NAT")
    serve.add_argument("--token", help="the access token to ask for (default: a fresh one, off the loopback)")
    serve.add_argument("--run", metavar="RUN", help="follow this run only (default: whichever broadcasts)")
    replay = commands.add_parser(
        "replay",
        help="replay a recorded run in the TUI, no broker needed",
        description="Open the live run screen on a recording (amqp-lab run --record, or e in the live screen): "
        "the flow, clients, ledger, trends and events as they were shown. Keys: space play/pause, left/right "
        "5 s (shift: 30 s), [ and ] speed x0.5 to x8, n the next event of a kind, k which kind, Esc quit.",
    )
    replay.add_argument("recording", metavar="FILE", help="a recording, e.g. run.rec.gz")
    compare = commands.add_parser(
        "compare",
        help="two recorded runs side by side: what changed and by how much",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare two recordings: the scenario settings that differ, then each figure of both runs\n"
        "at their end (throughput, latency percentiles, the ledger, timeouts, ...), its change from A\n"
        "to B, and whether that is better or worse. Exit 0, or 2 when a file cannot be read.",
        epilog="example:\n"
        "  amqp-lab run workers --record persistent.rec.gz\n"
        "  amqp-lab run workers --set workers.persistent=false --record transient.rec.gz\n"
        "  amqp-lab compare persistent.rec.gz transient.rec.gz",
    )
    compare.add_argument("a", metavar="A", help="the first recording (the baseline)")
    compare.add_argument("b", metavar="B", help="the second recording")
    compare.add_argument("--json", dest="report", metavar="FILE", help="also write the comparison as JSON")
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
    agent.add_argument(
        "--for-run",
        metavar="RUN_ID",
        help="serve this run only, then end (how --processes starts its local agents)",
    )
    agent.add_argument(
        "--until-stdin-closes",
        action="store_true",
        help="also end when standard input ends: the process that started it holds the other end",
    )
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
