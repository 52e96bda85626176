"""No password survives into anything shown or logged."""

from __future__ import annotations

from urllib.parse import quote, unquote

from amqp_lab.cli import main
from amqp_lab.config import RESERVED_IN_USERINFO, SettingsError, build
from amqp_lab.masking import mask_text, mask_url, unmask_url
from hypothesis import assume, given, settings
from hypothesis import strategies as st


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url("amqp://alice:s3cret@host:5672/vh") == "amqp://alice:****@host:5672/vh"
    assert mask_url("https://alice:s3cret@[::1]:15671/") == "https://alice:****@[::1]:15671/"
    assert mask_url("amqp://host:5672/") == "amqp://host:5672/"


def test_mask_text_scrubs_urls_and_known_secrets() -> None:
    text = "failed amqp://bob:hunter22@h:5672/ then auth with hunter22 failed"
    assert mask_text(text, ("hunter22",)) == "failed amqp://bob:****@h:5672/ then auth with **** failed"


def test_malformed_url_is_masked_too() -> None:
    assert "s3cret" not in mask_url("amqp://alice:s3cret@host:99999/")


def test_every_display_of_settings_is_masked() -> None:
    settings = build({"amqp_url": ["amqp://alice:s3cret@n1:5672/", "amqp://alice:s3cret@n2:5672/"]})
    shown = [e.display() for e in settings.endpoints] + [settings.management_display, repr(settings)]
    assert all("s3cret" not in text for text in shown)
    assert settings.secrets() == ("s3cret",)


def test_a_left_mask_restores_the_known_password() -> None:
    settings = build({"amqp_url": ["amqp://alice:s3cret@n1:5672/"]})
    edited = unmask_url("amqp://alice:****@n1:5672/other", settings.secret_for)
    assert edited == "amqp://alice:s3cret@n1:5672/other"
    assert unmask_url("amqp://alice:new@n1:5672/", settings.secret_for) == "amqp://alice:new@n1:5672/"


# Passwords as people type them: raw (not percent-encoded), with any character at all.
URL_SHAPES = ("amqp://u:{}@h:5672/", "amqps://u:{}@h/vh", "http://u:{}@h:15672/", "u:{}@h")
RESERVED = "/?#[]@:%! \\\"'"
passwords = st.text(min_size=1, max_size=24) | st.text(alphabet=RESERVED + "Zq7wX", min_size=1, max_size=24)


def everything_shown(url: str) -> str:
    """Every text the lab shows or logs about a URL the user typed: the error that refuses it, or the displays of
    the settings it makes (also as a library's exception message would carry it)."""
    key = "management_url" if url.startswith("http") else "amqp_url"
    try:
        settings = build({key: url})
    except SettingsError as exc:
        return str(exc)
    shown = [repr(settings), settings.management_display, settings.management_urls_display]
    shown += [e.display(with_vhost=True) for e in settings.endpoints]
    shown.append(mask_url(url))
    for e in settings.endpoints:  # a library's message that spells the URL out from its parts, password and all
        spelled = f"connection to amqp://{e.username}:{e.password}@{e.address} failed"
        shown.append(mask_text(spelled, settings.secrets()))
    return "\n".join(shown)


# The texts around a masked password, a well-formed one and one that needs percent-encoding (the error says so):
# a password that is part of them proves nothing either way ("/:" is in "...@h:5672/: the user name ...").
AROUND = (
    "\n".join(everything_shown(shape.format(p)) for shape in URL_SHAPES for p in ("x", "x/")) + RESERVED_IN_USERINFO
)


@given(password=passwords, shape=st.sampled_from(URL_SHAPES), encoded=st.booleans())
@settings(max_examples=600, deadline=None)
def test_no_password_of_any_characters_is_ever_shown(password: str, shape: str, encoded: bool) -> None:
    typed = quote(password, safe="") if encoded else password
    secret = unquote(typed)
    assume(typed not in AROUND and secret not in AROUND)
    shown = everything_shown(shape.format(typed))
    assert typed not in shown and secret not in shown


def test_a_forgotten_host_does_not_show_the_password_as_a_port() -> None:
    assert mask_url("amqp://user:s3cret") == "amqp://user:****"
    assert mask_url("amqp://host:5672/vh") == "amqp://host:5672/vh"


def test_the_passwords_from_the_bug_report_are_masked_and_the_fix_is_named(capsys) -> None:  # type: ignore[no-untyped-def]
    for flag, url in (
        ("--url", "amqp://user:pa/ss@host/"),
        ("--url", "amqp://user:Zq7@p:ss/w%rd!X@host/"),
        ("--management-url", "http://user:pa/ss@host/"),
    ):
        assert main([flag, url, "check"]) == 2
        error = capsys.readouterr().err
        assert "pa/ss" not in error and "ss/w" not in error and "Zq7" not in error, error
        assert "percent-encoded" in error and "%2F" in error
