#!/usr/bin/env python3
"""Start and stop a private RabbitMQ node that never touches the standard ports.

The node gets its own name, data folder, free loopback ports, a private epmd,
the management plugin and a 1 s statistics interval kept in 1 s samples (its
counters step every second, not every 5 s), so the test suite, the benchmarks
and the screenshot script can each run one beside any broker the machine
already has.

Two versions:
  3.10  Debian 12's rabbitmq-server, installed on this machine
  4.0   Debian 13's rabbitmq-server (Erlang 27), in a chroot made with
        debootstrap and cached in /var/cache/amqp-lab/rabbitmq-4.0
        (AMQP_LAB_RABBITMQ4_ROOT elsewhere); built on first use

    python3 scripts/rabbitmq_node.py start --dir /tmp/lab-node [--version 4.0]
    python3 scripts/rabbitmq_node.py stop --dir /tmp/lab-node
    python3 scripts/rabbitmq_node.py build-chroot

`start` prints shell lines (AMQP_URL=..., AMQP_LAB_MANAGEMENT_URL=...) that
`eval` can take.  Runs as root: the server script under /usr/lib/rabbitmq/bin
skips Debian's su wrapper.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
STATE_FILE = "node.json"
VERSIONS = ("3.10", "4.0")
# Statistics every second, kept in one-second samples: the management plugin keeps its counters (message_stats,
# queue totals) in samples of 5 s by default whatever the statistics interval, so they would step every 5 s.
STATISTICS_CONFIG = "collect_statistics_interval = 1000\n"
ONE_SECOND_SAMPLES = "".join(
    f"management.sample_retention_policies.{kept} = {step}\n"
    for kept, step in (
        ("global.minute", 1),
        ("global.hour", 60),
        ("basic.minute", 1),
        ("basic.hour", 60),
        ("detailed.10", 1),
    )
)
PORTS_FROM = 10000  # free_ports' lowest: above the ports services are usually given
# RabbitMQ's own (management, Prometheus, inter-node, STOMP): a node of ours never takes a port a broker
# installed here would want.
STANDARD_PORTS = frozenset({15671, 15672, 15692, 25672, 61613, 61614})  # those from PORTS_FROM up
CHROOT = Path(os.environ.get("AMQP_LAB_RABBITMQ4_ROOT", "/var/cache/amqp-lab/rabbitmq-4.0"))
DEBIAN_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class PrivateNode:
    """Where a running private node lives and how to reach it."""

    version: str
    name: str
    root: str  # "/" or the chroot the node runs in
    base_dir: str  # the node's folder, as seen from inside `root`
    amqp_port: int
    management_port: int
    dist_port: int
    epmd_port: int
    amqps_port: int = 0  # 0: no TLS listeners
    https_port: int = 0

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}/"

    @property
    def amqps_url(self) -> str:
        return f"amqps://guest:guest@127.0.0.1:{self.amqps_port}/"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}/"

    @property
    def host_dir(self) -> Path:
        """The node's folder as seen from this machine."""
        return Path(self.root) / self.base_dir.lstrip("/")

    def env(self) -> dict[str, str]:
        """The environment every rabbitmq command for this node needs."""
        base = Path(self.base_dir)
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(base),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            # A private epmd, so nothing is shared with (or left running for) other nodes.
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "ERL_CRASH_DUMP": str(base / "erl_crash.dump"),  # in the node's folder, not wherever it was started
        }

    def run(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        prefix = [] if self.root == "/" else ["chroot", self.root]
        return subprocess.run(
            [*prefix, *command], env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )

    def ctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run(str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.name, *args, timeout=timeout)

    def stop_app(self) -> None:
        """Stop the broker inside the node: clients lose it as in an outage."""
        checked(self.ctl("stop_app"), "stop_app")

    def start_app(self) -> None:
        checked(self.ctl("start_app"), "start_app")
        checked(self.ctl("await_startup"), "await_startup")


def root_for(version: str) -> Path:
    if version not in VERSIONS:
        raise RuntimeError(f"unknown RabbitMQ version {version!r}: choose one of {', '.join(VERSIONS)}")
    return Path("/") if version == "3.10" else CHROOT


def installed(version: str = "3.10") -> bool:
    return (root_for(version) / RABBITMQ_BIN.relative_to("/") / "rabbitmq-server").exists()


def can_build_chroot() -> bool:
    return shutil.which("debootstrap") is not None and os.geteuid() == 0


def build_chroot(root: Path = CHROOT) -> Path:
    """Debian 13 with rabbitmq-server in `root`, built once (about 370 MB, a minute or two)."""
    if (root / RABBITMQ_BIN.relative_to("/") / "rabbitmq-server").exists():
        return root
    if not can_build_chroot():
        raise RuntimeError("building the RabbitMQ 4.0 chroot needs root and debootstrap (apt-get install debootstrap)")
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=root.name + ".partial-", dir=root.parent))
    result = subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=rabbitmq-server", "trixie", str(partial), DEBIAN_MIRROR],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise RuntimeError(f"debootstrap failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    partial.rename(root)  # only a complete chroot ever has the final name
    return root


def _mount_proc(root: Path) -> None:
    proc = root / "proc"
    if root == Path("/") or os.path.ismount(proc):
        return
    subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True, capture_output=True, timeout=30)


def _chroot_in_use(root: Path) -> bool:
    """Whether any process runs inside `root`: another test session's node shares the chroot and its /proc."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "root") == str(root):
                    return True
            except OSError:  # gone meanwhile, or not ours to look at
                continue
    return False


def _unmount_proc(root: Path) -> None:
    """Once the last node in the chroot has stopped: unmounted under a node of another session (a benchmark, a
    second suite), its /proc went and the node failed every test left."""
    if root != Path("/") and os.path.ismount(root / "proc") and not _chroot_in_use(root):
        subprocess.run(["umount", "--lazy", str(root / "proc")], check=False, capture_output=True, timeout=30)


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports, below the kernel's ephemeral range: a port from that range (what binding port
    0 gives) can become the local end of any connection made before the node binds it, and a suite makes many
    (a 3.10 node failed so: eaddrinuse). Each is held open until all are picked, so no two come out the same."""
    first, _ = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    with contextlib.ExitStack() as held:
        ports: list[int] = []
        while len(ports) < count:
            # The system's randomness: pytest-randomly seeds `random` alike in every worker of a suite.
            port = random.SystemRandom().randrange(PORTS_FROM, first)
            if port in STANDARD_PORTS or port in ports:
                continue
            probe = held.enter_context(socket.socket())
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:  # in use
                continue
            ports.append(port)
        return ports


def checked(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {what} failed: {result.stdout}{result.stderr}".strip())


def start(
    name: str = "amqplab-test@localhost",
    version: str = "3.10",
    base_dir: Path | None = None,
    tls: Path | None = None,
    epmd_port: int | None = None,
    cookie: str | None = None,
    extra_config: str = "",
    one_second_samples: bool = True,
) -> PrivateNode:
    """Boot a node and wait until it accepts connections.

    `base_dir` (3.10 only) picks the node's folder; a chroot node always lives
    in a fresh folder under the chroot's /tmp. `tls` is a folder holding
    ca.pem, server.pem and server.key: the node then also listens for amqps and
    https, with that certificate. Nodes of one cluster share an `epmd_port`
    (to find each other) and a `cookie` (to trust each other). `extra_config`: more rabbitmq.conf lines.
    `one_second_samples=False` keeps RabbitMQ's samples of 5 s, as a broker installed with defaults has them.
    """
    # Within the test suite's 120 s for a fixture, stopping the node included, so that the reason is reported.
    deadline = time.monotonic() + 95
    args = (name, version, base_dir, tls, epmd_port, cookie, extra_config, one_second_samples)
    try:
        return _boot(*args, deadline)
    except PortTaken:  # between choosing its ports and binding them: once more, on other ports
        return _boot(*args, deadline)


class PortTaken(RuntimeError):
    """A port chosen for the node was taken before the node could bind it."""


def _boot(
    name: str,
    version: str,
    base_dir: Path | None,
    tls: Path | None,
    epmd_port: int | None,
    cookie: str | None,
    extra_config: str,
    one_second_samples: bool,
    deadline: float,
) -> PrivateNode:
    root = build_chroot() if version == "4.0" else root_for(version)
    if not installed(version):
        raise RuntimeError("rabbitmq-server is not installed (apt-get install -y rabbitmq-server)")
    if root == Path("/"):
        host_dir = (base_dir or Path(tempfile.mkdtemp(prefix="amqp-lab-node-"))).resolve()
        inside = str(host_dir)
    else:
        host_dir = Path(tempfile.mkdtemp(prefix="amqp-lab-node-", dir=root / "tmp"))
        inside = "/" + str(host_dir.relative_to(root))
    host_dir.mkdir(parents=True, exist_ok=True)
    ports = free_ports(6)
    node = PrivateNode(
        version=version,
        name=name,
        root=str(root),
        base_dir=inside,
        amqp_port=ports[0],
        management_port=ports[1],
        dist_port=ports[2],
        epmd_port=epmd_port or ports[3],
        amqps_port=ports[4] if tls else 0,
        https_port=ports[5] if tls else 0,
    )
    if cookie is not None:  # HOME is the node's folder, for the server and for rabbitmqctl alike
        cookie_file = host_dir / ".erlang.cookie"
        cookie_file.write_text(cookie)
        cookie_file.chmod(0o400)
    (host_dir / "enabled_plugins").write_text("[rabbitmq_management].\n")
    (host_dir / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}\n"
        f"management.tcp.port = {node.management_port}\n"
        "management.tcp.ip = 127.0.0.1\n"
        "loopback_users = none\n"
        + STATISTICS_CONFIG
        + (ONE_SECOND_SAMPLES if one_second_samples else "")
        + (_tls_config(node, tls, host_dir) if tls else "")
        + extra_config
    )
    # Keeps the node's distribution listener on loopback as well.
    (host_dir / "advanced.config").write_text("[{kernel, [{inet_dist_use_interface, {127,0,0,1}}]}].\n")
    _mount_proc(root)
    started = node.run(str(RABBITMQ_BIN / "rabbitmq-server"), "-detached", timeout=60)
    if started.returncode != 0:
        raise RuntimeError(f"rabbitmq-server {version} did not start: {started.stderr.strip()}")
    while True:
        wait = min(30.0, max(1.0, deadline - time.monotonic()))
        try:
            result = node.ctl("await_startup", "--timeout", str(round(wait)), timeout=wait + 5)
        except subprocess.TimeoutExpired:
            result = subprocess.CompletedProcess([], 1, "", f"rabbitmqctl await_startup did not answer in {wait:g} s")
        if result.returncode == 0:
            break
        said = log_tail(host_dir)
        taken = "eaddrinuse" in said  # the node then hangs half started: await_startup would wait out its time
        if taken or time.monotonic() > deadline:
            try:
                stop(node, wait=15)
            except subprocess.TimeoutExpired:
                kill(node)  # too loaded to stop in time: a node left running would outlive the tests
            failure = PortTaken if taken else RuntimeError
            raise failure(f"node {name} did not start: {result.stderr.strip()}\n{said}")
        time.sleep(0.5)  # the node's pid file may not exist yet
    (host_dir / STATE_FILE).write_text(json.dumps(asdict(node)))
    return node


def log_tail(host_dir: Path, lines: int = 30) -> str:
    """The last lines of a node's logs: why it did not start."""
    said = []
    for log in sorted((host_dir / "log").glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        said += [f"--- {log.name}", *tail]
    return "\n".join(said) or f"(no log in {host_dir / 'log'})"


def _tls_config(node: PrivateNode, tls: Path, host_dir: Path) -> str:
    """Copy the certificate into the node's folder (inside the chroot, if any) and listen with it."""
    shutil.copytree(tls, host_dir / "tls")
    files = {
        kind: f"{node.base_dir}/tls/{name}"
        for kind, name in (("ca", "ca.pem"), ("cert", "server.pem"), ("key", "server.key"))
    }
    lines = [f"listeners.ssl.default = 127.0.0.1:{node.amqps_port}"]
    for prefix in ("ssl_options", "management.ssl"):
        lines += [
            f"{prefix}.cacertfile = {files['ca']}",
            f"{prefix}.certfile = {files['cert']}",
            f"{prefix}.keyfile = {files['key']}",
        ]
    lines += ["ssl_options.verify = verify_none", "ssl_options.fail_if_no_peer_cert = false"]
    lines += [f"management.ssl.port = {node.https_port}", "management.ssl.ip = 127.0.0.1"]
    return "\n".join(lines) + "\n"


def stop(node: PrivateNode, last: bool = True, wait: float = 120) -> None:
    """Stop the node and remove its folder; the last node on its epmd stops that epmd too."""
    node.ctl("stop", timeout=wait)
    _release(node, time.monotonic() + 30, last)


def _release(node: PrivateNode, deadline: float, last: bool = True) -> None:
    """What an ended node leaves: its folder, and (the last node on it) its epmd and the chroot's /proc."""
    shutil.rmtree(node.host_dir, ignore_errors=True)
    if not last:
        return
    # epmd refuses -kill while the node is still registered, for a moment after it ended.
    while "not allowed" in node.run("epmd", "-kill", timeout=30).stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    _unmount_proc(Path(node.root))


def running_from(folder: str) -> list[int]:
    """The processes with `folder`, or a path in it, as an argument (a node names its folder as its -home)."""
    folder_bytes = folder.rstrip("/").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):  # ended while we looked, or not ours to read
            args = (entry / "cmdline").read_bytes().split(b"\0")
            if any(arg == folder_bytes or arg.startswith(folder_bytes + b"/") for arg in args):
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Running: neither gone nor ended and waiting for its parent to read its status."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill(node: PrivateNode) -> None:
    """End a node that would not stop: every process running from its folder (the node and its helpers), then
    its epmd, then the folder."""
    killed = running_from(node.base_dir)
    for pid in killed:
        with contextlib.suppress(OSError):  # ended meanwhile
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.1)  # its sockets close as it exits
    _release(node, deadline)


def load(base_dir: Path) -> PrivateNode:
    return PrivateNode(**json.loads((base_dir / STATE_FILE).read_text()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "build-chroot"])
    parser.add_argument("--dir", type=Path, help="folder for the node's data, logs and state (3.10)")
    parser.add_argument("--version", choices=VERSIONS, default="3.10", help="RabbitMQ version (default: %(default)s)")
    parser.add_argument("--name", default="amqplab@localhost", help="Erlang node name (default: %(default)s)")
    args = parser.parse_args()
    try:
        if args.action == "build-chroot":
            print(build_chroot())
        elif args.action == "start":
            node = start(args.name, args.version, args.dir)
            print(f"AMQP_URL={node.amqp_url}")
            print(f"AMQP_LAB_MANAGEMENT_URL={node.management_url}")
            print(f"# stop with: {sys.argv[0]} stop --dir {node.host_dir}")
        else:
            if args.dir is None:
                parser.error("stop needs --dir, the folder start printed")
            stop(load(args.dir))
    except (RuntimeError, OSError, TypeError, ValueError, subprocess.SubprocessError) as exc:
        print(f"rabbitmq_node: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
