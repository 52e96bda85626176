"""No password survives into anything shown or logged."""

from __future__ import annotations

from amqp_lab.config import build
from amqp_lab.masking import mask_text, mask_url, unmask_url


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
