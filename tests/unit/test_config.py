"""Settings: precedence, profiles, derived management URL, and clear errors for bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from amqp_lab.config import SettingsError, build, resolve

NO_FILE = {"AMQP_LAB_CONFIG": os.devnull}  # an empty config file


def write_config(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return {"AMQP_LAB_CONFIG": str(path)}


def test_defaults_point_at_local_guest() -> None:
    settings = resolve(env=NO_FILE)
    assert settings.primary.address == "localhost:5672"
    assert settings.primary.username == "guest"
    assert settings.vhost == "/"
    assert settings.management_base == "http://localhost:15672/"
    assert settings.read_only is False
    assert settings.tls.verify is True


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    env = write_config(
        tmp_path,
        'amqp_url = "amqp://file:f@file-host:5672/"\nvhost = "from-file"\nrefresh = 9\nread_only = true\n',
    )
    from_file = resolve(env=env)
    assert (from_file.primary.host, from_file.vhost, from_file.refresh) == ("file-host", "from-file", 9.0)

    env |= {"AMQP_URL": "amqp://env:e@env-host:5672/", "AMQP_LAB_VHOST": "from-env"}
    from_env = resolve(env=env)
    assert (from_env.primary.host, from_env.vhost, from_env.refresh) == ("env-host", "from-env", 9.0)

    from_flags = resolve({"amqp_url": ["amqp://flag:x@flag-host:5672/"], "read_only": False}, env=env)
    assert (from_flags.primary.host, from_flags.vhost, from_flags.read_only) == ("flag-host", "from-env", False)


def test_profile_overrides_top_level_and_is_chosen_by_flag_or_env(tmp_path: Path) -> None:
    env = write_config(
        tmp_path,
        """
amqp_url = "amqp://localhost/"
default_profile = "dev"
[profiles.dev]
vhost = "dev"
[profiles.staging]
amqp_url = ["amqps://me:secret@node1:5671/", "amqps://me:secret@node2:5671/"]
read_only = true
""",
    )
    assert resolve(env=env).vhost == "dev"
    staging = resolve(env=env, profile="staging")
    assert [e.address for e in staging.endpoints] == ["node1:5671", "node2:5671"]
    assert staging.read_only and staging.profile == "staging"
    assert resolve(env=env | {"AMQP_LAB_PROFILE": "staging"}).profile == "staging"
    with pytest.raises(SettingsError, match=r"no profile 'prod' .*profiles: dev, staging"):
        resolve(env=env, profile="prod")


def test_cluster_endpoints_from_environment_keep_their_order() -> None:
    settings = resolve(env=NO_FILE | {"AMQP_URL": "amqp://a:1@n1:5672/, amqp://a:1@n2:5673/"})
    assert [e.address for e in settings.endpoints] == ["n1:5672", "n2:5673"]


def test_management_url_is_derived_from_the_amqp_host_with_the_same_credentials() -> None:
    plain = resolve({"amqp_url": ["amqp://u:p%40ss@rabbit.example:5672/"]}, env=NO_FILE)
    assert plain.management_base == "http://rabbit.example:15672/"
    assert plain.management_credentials == ("u", "p@ss")
    tls = resolve({"amqp_url": ["amqps://u:p@rabbit.example/"]}, env=NO_FILE)
    assert tls.primary.port == 5671
    assert tls.management_base == "https://rabbit.example:15671/"


def test_vhost_comes_from_the_url_path_unless_given() -> None:
    assert resolve({"amqp_url": ["amqp://h/staging%2Feu"]}, env=NO_FILE).vhost == "staging/eu"
    assert resolve({"amqp_url": ["amqp://h/%2F"]}, env=NO_FILE).vhost == "/"
    assert resolve({"amqp_url": ["amqp://h/a"], "vhost": "b"}, env=NO_FILE).vhost == "b"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"amqp_url": ["http://guest:pw@h:15672/"]}, r"unknown scheme 'http'.*--management-url"),
        ({"amqp_url": ["rabbit://h/"]}, r"unknown scheme 'rabbit'.*amqp://"),
        ({"amqp_url": ["amqp://h:99999/"]}, r"port must be a number from 1 to 65535"),
        ({"amqp_url": ["amqp://h:abc/"]}, r"port must be a number"),
        ({"amqp_url": ["amqp:///vhost"]}, r"no host"),
        ({"management_url": "ftp://h/"}, r"unknown scheme 'ftp' in the management URL.*http://"),
        ({"ca_file": "/nonexistent/ca.pem"}, r"CA file /nonexistent/ca.pem does not exist"),
        ({"refresh": "0"}, r"refresh must be more than 0"),
        ({"refresh": "0.5"}, r"refresh must be at least 1 s.*polling faster shows the same numbers"),
        ({"timeout": "soon"}, r"timeout must be a number of seconds, not 'soon'"),
        ({"heartbeat": "1.5"}, r"heartbeat must be a whole number of seconds, not '1.5'"),
        ({"heartbeat": "70000"}, r"heartbeat must be from 0 \(off\) to 65535 seconds"),
    ],
)
def test_bad_settings_name_what_to_fix(flags: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        resolve(flags, env=NO_FILE)


def test_heartbeat_comes_from_flags_or_the_environment_and_is_unset_by_default() -> None:
    assert resolve(env=NO_FILE).heartbeat is None  # the URL's ?heartbeat=, else RabbitMQ's 60 s
    assert resolve({"heartbeat": "5"}, env=NO_FILE).heartbeat == 5
    assert resolve(env=NO_FILE | {"AMQP_LAB_HEARTBEAT": "0"}).heartbeat == 0


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(SettingsError, match=r"read_only must be true or false, not 'perhaps'"):
        resolve(env=NO_FILE | {"AMQP_LAB_READ_ONLY": "perhaps"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("amqp_url = [", r"is not valid TOML"),
        ('amqp_uri = "amqp://h/"', r"unknown key 'amqp_uri'"),
        ("[profiles.x]\nhost = 'h'", r"\[profiles.x\]: unknown key 'host'"),
        ("amqp_url = 5", r"amqp_url must be a URL"),
    ],
)
def test_bad_config_files_are_reported_with_their_path(tmp_path: Path, text: str, message: str) -> None:
    env = write_config(tmp_path, text)
    with pytest.raises(SettingsError, match=message):
        resolve(env=env)


def test_non_utf8_config_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'amqp_url = "\xff"\n')
    with pytest.raises(SettingsError, match=r"is not UTF-8 text"):
        resolve(env={"AMQP_LAB_CONFIG": str(path)})


def test_missing_explicit_config_file_is_an_error() -> None:
    with pytest.raises(SettingsError, match=r"config file /nonexistent/amqp-lab\.toml does not exist"):
        resolve(config_file="/nonexistent/amqp-lab.toml", env={})


def test_a_cluster_has_a_management_api_per_node_to_fall_back_on() -> None:
    given = build({"management_url": "http://ops:s3cret@h1:15672/, http://h2:15672/"})
    assert (given.management_url, given.management_fallbacks) == ("http://ops:s3cret@h1:15672/", ("http://h2:15672/",))
    assert given.management_urls_display == "http://ops:****@h1:15672/, http://h2:15672/"
    derived = build({"amqp_url": "amqp://u:pw1@h1:5672/,amqp://u:pw1@h2:5672/,amqp://u:pw1@h2:5673/"})
    assert derived.management_url == "http://u:pw1@h1:15672/"
    assert derived.management_fallbacks == ("http://u:pw1@h2:15672/",)  # one per host
    listed = build({"management_url": ["http://a:15672/", "http://b:x9@b:15672/"]})
    assert "x9" in listed.secrets()


def test_processes_auto_leaves_a_core_to_a_broker_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for cores, local, remote in ((1, 0, 0), (2, 2, 2), (4, 3, 4), (8, 7, 8)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, cores=cores: set(range(cores)))
        given = {"processes": "auto"}
        assert resolve(given, env=NO_FILE).processes == local, cores  # localhost
        assert resolve(given | {"amqp_url": "amqp://guest:guest@127.0.0.1:5672/"}, env=NO_FILE).processes == local
        assert resolve(given | {"amqp_url": "amqp://lab:s@broker.example:5672/"}, env=NO_FILE).processes == remote
    assert resolve({"processes": "3"}, env=NO_FILE).processes == 3
    assert resolve(env=NO_FILE | {"AMQP_LAB_PROCESSES": "2"}).processes == 2
    assert resolve(env=NO_FILE).processes == 0


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"processes": "many"}, r"processes must be a whole number or auto, not 'many'"),
        ({"processes": "-1"}, r"processes must be from 0 \(clients run in this one\) to 64, or auto"),
        ({"processes": "2", "agents": "2"}, r"agents \(2\) and processes \(2\) both take a run's clients"),
    ],
)
def test_bad_processes_say_what_to_give(given: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        resolve(given, env=NO_FILE)
