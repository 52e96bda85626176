"""Connection settings, from flags > environment > config file > defaults.

Every way of telling amqp-lab where the broker is ends up here, as one
validated, immutable `Settings`.  Bad input raises `SettingsError` whose
message names what to fix.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit

import platformdirs

from amqp_lab.masking import mask_url, url_host

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/"
DEFAULT_MANAGEMENT_PORT = 15672
DEFAULT_MANAGEMENT_TLS_PORT = 15671
DEFAULT_REFRESH = 5.0  # RabbitMQ's default collect_statistics_interval
MIN_REFRESH = 1.0  # the finest statistics interval worth polling for; the overview does not say the broker's
DEFAULT_TIMEOUT = 5.0
MAX_HEARTBEAT = 65535  # the field is 16 bits on the wire
MAX_AGENTS = 64

# Environment variables, documented in `amqp-lab --help` and the README.
ENV = {
    "amqp_urls": "AMQP_URL",
    "management_url": "AMQP_LAB_MANAGEMENT_URL",
    "vhost": "AMQP_LAB_VHOST",
    "ca_file": "AMQP_LAB_CA_FILE",
    "cert_file": "AMQP_LAB_CERT_FILE",
    "key_file": "AMQP_LAB_KEY_FILE",
    "verify": "AMQP_LAB_TLS_VERIFY",
    "read_only": "AMQP_LAB_READ_ONLY",
    "refresh": "AMQP_LAB_REFRESH",
    "timeout": "AMQP_LAB_TIMEOUT",
    "heartbeat": "AMQP_LAB_HEARTBEAT",
    "agents": "AMQP_LAB_AGENTS",
    "processes": "AMQP_LAB_PROCESSES",
}
ENV_PROFILE = "AMQP_LAB_PROFILE"
ENV_CONFIG = "AMQP_LAB_CONFIG"

# Keys a config file (top level or a [profiles.NAME] table) may hold.
FILE_KEYS = {
    "amqp_url",
    "management_url",
    "vhost",
    "ca_file",
    "cert_file",
    "key_file",
    "verify",
    "read_only",
    "refresh",
    "timeout",
    "heartbeat",
    "agents",
    "processes",
}


class SettingsError(ValueError):
    """Settings that cannot work; the message says what to change."""


@dataclass(frozen=True)
class Endpoint:
    """One AMQP node to connect to."""

    scheme: str
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    vhost_in_url: str | None
    query: tuple[tuple[str, str], ...] = ()

    @property
    def tls(self) -> bool:
        return self.scheme == "amqps"

    @property
    def address(self) -> str:
        return url_host(self.host, self.port)

    def url(self) -> str:
        """The endpoint as a URL, password and all: for a child process's environment, never for display."""
        path = quote(self.vhost_in_url, safe="") if self.vhost_in_url is not None else ""
        query = f"?{urlencode(self.query)}" if self.query else ""
        user = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}"
        return f"{self.scheme}://{user}@{self.address}/{path}{query}"

    def display(self, with_vhost: bool = False) -> str:
        """The endpoint as a URL with the password masked."""
        path = quote(self.vhost_in_url, safe="") if with_vhost and self.vhost_in_url else ""
        return mask_url(f"{self.scheme}://{quote(self.username, safe='')}:x@{self.address}/{path}")


@dataclass(frozen=True)
class TlsOptions:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify: bool = True


@dataclass(frozen=True)
class Settings:
    """Where the broker is and how to talk to it; immutable and validated."""

    endpoints: tuple[Endpoint, ...]
    management_url: str = field(repr=False)  # may hold a password
    vhost: str
    tls: TlsOptions = TlsOptions()
    read_only: bool = False
    refresh: float = DEFAULT_REFRESH
    timeout: float = DEFAULT_TIMEOUT
    heartbeat: int | None = None  # seconds asked of the broker; None: the URL's ?heartbeat=, else 60
    broker_given: bool = True  # False: no AMQP URL anywhere, the default localhost one is assumed
    agents: int = 0  # runs hand their clients to this many `amqp-lab agent` processes; 0: run them here
    processes: int = 0  # runs start this many local agent processes for their clients; 0: run them here
    profile: str | None = None
    # The management API on other nodes of a cluster, asked when the first does not answer.
    management_fallbacks: tuple[str, ...] = field(default=(), repr=False)

    @property
    def primary(self) -> Endpoint:
        return self.endpoints[0]

    @property
    def handed_out(self) -> int:
        """How many agents a run's clients go to, local or not; 0: they run in this process."""
        return self.agents or self.processes

    @property
    def management_display(self) -> str:
        return mask_url(self.management_url)

    @property
    def management_urls_display(self) -> str:
        """Every management URL, masked, comma separated: as the connection form shows and reads them."""
        return ", ".join(mask_url(url) for url in (self.management_url, *self.management_fallbacks))

    @property
    def management_credentials(self) -> tuple[str, str]:
        parts = urlsplit(self.management_url)
        if parts.username is not None:
            return unquote(parts.username), unquote(parts.password or "")
        return self.primary.username, self.primary.password

    @property
    def management_base(self) -> str:
        """The management URL without credentials, ending in /."""
        parts = urlsplit(self.management_url)
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        return f"{parts.scheme}://{url_host(parts.hostname or '', parts.port)}{path}"

    def secret_for(self, username: str, address: str) -> str | None:
        """The password in use for this user at this address (or for this user anywhere)."""
        candidates = [(e.username, e.address, e.password) for e in self.endpoints]
        management = urlsplit(self.management_url)
        user, password = self.management_credentials
        candidates.append((user, url_host(management.hostname or "", management.port), password))
        for wanted_address in (address, None):
            for cand_user, cand_address, cand_password in candidates:
                if cand_user == username and wanted_address in (None, cand_address):
                    return cand_password
        return None

    def environment(self) -> dict[str, str]:
        """These settings as the environment variables that give them (passwords included: for a child process
        of ours, which inherits them privately, never for a command line or a screen)."""
        values = {
            "amqp_urls": ",".join(endpoint.url() for endpoint in self.endpoints),
            "management_url": ",".join((self.management_url, *self.management_fallbacks)),
            "vhost": self.vhost,
            "ca_file": str(self.tls.ca_file or ""),
            "cert_file": str(self.tls.cert_file or ""),
            "key_file": str(self.tls.key_file or ""),
            "verify": str(self.tls.verify).lower(),
            "read_only": str(self.read_only).lower(),
            "refresh": f"{self.refresh:g}",
            "timeout": f"{self.timeout:g}",
            "heartbeat": str(self.heartbeat or ""),
            "agents": str(self.agents),
            "processes": str(self.processes),
        }
        return {ENV[key]: value for key, value in values.items() if value}

    def secrets(self) -> tuple[str, ...]:
        """Passwords to scrub from any text shown or logged.

        A password equal to its user name (guest:guest) is public already,
        and scrubbing it would hide the user name from error messages.
        """
        pairs = [(e.username, e.password) for e in self.endpoints]
        pairs.append(self.management_credentials)
        pairs += [
            (unquote(p.username or ""), unquote(p.password or "")) for p in map(urlsplit, self.management_fallbacks)
        ]
        return tuple(sorted({p for u, p in pairs if p and p != u}, key=len, reverse=True))


def config_path(flag: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if flag:
        return Path(flag).expanduser()
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]).expanduser()
    return platformdirs.user_config_path("amqp-lab") / "config.toml"


def load_config_file(path: Path, explicit: bool) -> dict[str, Any]:
    """The parsed config file; a missing default file is an empty config."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise SettingsError(f"config file {path} does not exist") from None
        return {}
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SettingsError(f"config file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    except RecursionError:  # the TOML parser recurses once per level of nesting
        raise SettingsError(f"config file {path} nests tables or lists far too deep: it is not a config file") from None
    _check_keys(data, path, allow={"profiles", "default_profile"})
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise SettingsError(f"config file {path}: 'profiles' must be a table of [profiles.NAME] tables")
    for name, profile in profiles.items():
        if not isinstance(profile, dict):
            raise SettingsError(f"config file {path}: [profiles.{name}] must be a table")
        _check_keys(profile, path, where=f"[profiles.{name}]")
    return data


def _check_keys(table: Mapping[str, Any], path: Path, allow: Set[str] = frozenset(), where: str = "") -> None:
    unknown = sorted(set(table) - FILE_KEYS - allow)
    if unknown:
        known = ", ".join(sorted(FILE_KEYS))
        place = f" {where}" if where else ""
        raise SettingsError(f"config file {path}{place}: unknown key {unknown[0]!r} (known: {known})")


def resolve(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
    profile: str | None = None,
) -> Settings:
    """Settings from flags > environment > config file (profile, then top level) > defaults.

    `flags` holds only what the user gave on the command line (None = not given),
    under the same names as the config file keys ("amqp_url" may be a list).
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    explicit_file = bool(config_file or env.get(ENV_CONFIG))
    path = config_path(config_file, env)
    data = load_config_file(path, explicit_file)

    profile = profile or env.get(ENV_PROFILE) or data.get("default_profile")
    file_values = {k: v for k, v in data.items() if k in FILE_KEYS}
    if profile:
        profiles = data.get("profiles", {})
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none defined"
            raise SettingsError(f"no profile {profile!r} in {path} (profiles: {known})")
        file_values.update(profiles[profile])

    env_values: dict[str, Any] = {key: env[name] for key, name in ENV.items() if env.get(name)}
    if "amqp_urls" in env_values:
        env_values["amqp_url"] = [u.strip() for u in env_values.pop("amqp_urls").split(",") if u.strip()]

    merged: dict[str, Any] = {}
    for layer in (file_values, env_values, flags):
        merged.update(layer)
    return build(merged, profile)


def build(values: Mapping[str, Any], profile: str | None = None) -> Settings:
    """Validated Settings from raw values (strings from the environment or typed from TOML)."""
    urls = values.get("amqp_url", DEFAULT_AMQP_URL)
    if isinstance(urls, str):
        urls = [u.strip() for u in urls.split(",") if u.strip()]
    if not isinstance(urls, list | tuple) or not urls or not all(isinstance(u, str) for u in urls):
        raise SettingsError("amqp_url must be a URL or a list of URLs, e.g. amqp://guest:guest@localhost:5672/")
    endpoints = tuple(parse_amqp_url(u) for u in urls)

    vhost = values.get("vhost")
    if vhost is None:
        vhost = endpoints[0].vhost_in_url or "/"
    if not isinstance(vhost, str) or not vhost:
        raise SettingsError("vhost must be a non-empty name, e.g. / or staging")

    tls = TlsOptions(
        ca_file=_existing_file(values.get("ca_file"), "CA file"),
        cert_file=_existing_file(values.get("cert_file"), "client certificate"),
        key_file=_existing_file(values.get("key_file"), "client key"),
        verify=_boolean(values.get("verify", True), "verify"),
    )
    if tls.key_file and not tls.cert_file:
        raise SettingsError("a client key needs its certificate too: add --cert-file")

    given = values.get("management_url")
    if isinstance(given, str):
        given = [u.strip() for u in given.split(",") if u.strip()]
    if given is not None and (not isinstance(given, list | tuple) or not all(isinstance(u, str) for u in given)):
        raise SettingsError("management_url must be a URL or a list of URLs, e.g. http://localhost:15672/")
    # Not given: the management API on each node's host (one per host: nodes on one host share its port).
    management_urls = list(dict.fromkeys(given or [derive_management_url(e) for e in endpoints]))
    for url in management_urls:
        check_management_url(url)
    management_url, *management_fallbacks = management_urls
    agents = _agents(values.get("agents", 0))
    processes = _processes(values.get("processes", 0), endpoints[0].host)
    if agents and processes:
        raise SettingsError(
            f"agents ({agents}) and processes ({processes}) both take a run's clients: agents on other machines, "
            "processes on this one; give one"
        )

    return Settings(
        endpoints=endpoints,
        management_url=management_url,
        vhost=vhost,
        tls=tls,
        read_only=_boolean(values.get("read_only", False), "read_only"),
        refresh=_refresh(values.get("refresh", DEFAULT_REFRESH)),
        timeout=_positive(values.get("timeout", DEFAULT_TIMEOUT), "timeout", upper=600),
        heartbeat=_heartbeat(values.get("heartbeat")),
        agents=agents,
        processes=processes,
        broker_given="amqp_url" in values,
        profile=profile,
        management_fallbacks=tuple(management_fallbacks),
    )


RESERVED_IN_USERINFO = (
    "the user name or password holds a character a URL reserves (/ ? # [ ] @ :): write it percent-encoded, "
    "e.g. / as %2F, @ as %40, : as %3A, % as %25"
)


_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*")


def _split(url: str, what: str, schemes: tuple[str, ...], usage: str) -> tuple[SplitResult, str]:
    """The URL's parts and how to show it, or an error that says what to fix.

    The scheme is checked first, and the URL is shown only once it has one of `schemes`: typed without one
    (`user:pa/ss@host`) a password can take any place, so nothing of the URL is shown. A raw / ? or # in a
    password ends the host part early (the last @ then falls outside it), a raw [ or ] is taken for an IPv6
    address: both are refused saying how to percent-encode them.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in schemes:
        named = repr(scheme) if sep and _SCHEME.fullmatch(scheme) else "(none)"
        api = "amqp" in schemes and named.startswith("'http")
        hint = " (that is the management API: give it as --management-url)" if api else ""
        raise SettingsError(f"unknown scheme {named} in the {what}: use {usage}{hint}")
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or ("@" in rest and rest.rfind("@") >= len(parts.netloc)):
        raise SettingsError(f"malformed {what} {shown}: {RESERVED_IN_USERINFO}")
    return parts, shown


def parse_amqp_url(url: str) -> Endpoint:
    parts, shown = _split(url, "AMQP URL", ("amqp", "amqps"), "amqp://host:5672/ or amqps://host:5671/")
    try:
        port = parts.port
    except ValueError:
        raise SettingsError(f"malformed AMQP URL {shown}: the port must be a number from 1 to 65535") from None
    if not parts.hostname:
        raise SettingsError(f"malformed AMQP URL {shown}: no host, e.g. amqp://guest:guest@localhost:5672/")
    if port == 0:
        raise SettingsError(f"malformed AMQP URL {shown}: port 0 is not a port")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return Endpoint(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or (5671 if parts.scheme == "amqps" else 5672),
        username=unquote(parts.username) if parts.username is not None else "guest",
        password=unquote(parts.password) if parts.password is not None else "guest",
        vhost_in_url=unquote(path) if path else None,
        query=tuple(parse_qsl(parts.query)),
    )


def derive_management_url(endpoint: Endpoint) -> str:
    """The management API on the AMQP host: port 15672, or https on 15671 for amqps."""
    scheme, port = ("https", DEFAULT_MANAGEMENT_TLS_PORT) if endpoint.tls else ("http", DEFAULT_MANAGEMENT_PORT)
    user = quote(endpoint.username, safe="")
    password = quote(endpoint.password, safe="")
    return f"{scheme}://{user}:{password}@{url_host(endpoint.host, port)}/"


def check_management_url(url: str) -> None:
    parts, shown = _split(url, "management URL", ("http", "https"), "http://host:15672/ or https://host:15671/")
    try:
        _ = parts.port
    except ValueError:
        raise SettingsError(f"malformed management URL {shown}: the port must be a number") from None
    if not parts.hostname:
        raise SettingsError(f"malformed management URL {shown}: no host")


def _existing_file(value: Any, what: str) -> Path | None:
    if value in (None, ""):
        return None
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise SettingsError(f"{what} {path} does not exist or is not a file")
    return path


def _boolean(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def _refresh(value: Any) -> float:
    refresh = _positive(value, "refresh", upper=3600)
    if refresh < MIN_REFRESH:
        raise SettingsError(
            f"refresh must be at least {MIN_REFRESH:g} s, not {value!r}: RabbitMQ's statistics change at most once "
            "per collect_statistics_interval (5 s by default), so polling faster shows the same numbers"
        )
    return refresh


def _heartbeat(value: Any) -> int | None:
    if value is None:
        return None
    try:
        seconds = int(str(value))
    except ValueError:
        raise SettingsError(f"heartbeat must be a whole number of seconds, not {value!r}") from None
    if not 0 <= seconds <= MAX_HEARTBEAT:
        raise SettingsError(f"heartbeat must be from 0 (off) to {MAX_HEARTBEAT} seconds, not {value!r}")
    return seconds


def _agents(value: Any) -> int:
    return _client_count(value, "agents", "clients run here")


def _processes(value: Any, broker_host: str) -> int:
    if str(value).strip().lower() == "auto":
        return auto_processes(broker_host)
    return _client_count(value, "processes", "clients run in this one", or_auto=True)


def _client_count(value: Any, name: str, zero: str, or_auto: bool = False) -> int:
    """How many agents or processes a run's clients go to, 0 to MAX_AGENTS."""
    also = " or auto" if or_auto else ""
    try:
        count = int(str(value))
    except ValueError:
        raise SettingsError(f"{name} must be a whole number{also}, not {value!r}") from None
    if not 0 <= count <= MAX_AGENTS:
        raise SettingsError(
            f"{name} must be from 0 ({zero}) to {MAX_AGENTS}{',' + also if also else ''}, not {value!r}"
        )
    return count


def auto_processes(broker_host: str) -> int:
    """Every core this process may use, less one for a broker on this machine beyond two cores (on two, the
    broker shares them); 0 (this process) when that leaves one: a single agent process only adds the relay's
    cost."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    local = broker_host in ("localhost", "::1") or broker_host.startswith("127.")
    count = cores - 1 if local and cores > 2 else cores
    return count if count >= 2 else 0


def _positive(value: Any, name: str, upper: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} must be a number of seconds, not {value!r}") from None
    if not 0 < number <= upper:
        raise SettingsError(f"{name} must be more than 0 and at most {upper:g} seconds, not {value!r}")
    return number
