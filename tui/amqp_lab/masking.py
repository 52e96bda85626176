"""Keep passwords out of everything a person or a log can see."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "****"

# scheme://user:password@ inside any text, e.g. a library's exception message. The password runs to the last @ of
# the word: a raw (not percent-encoded) password may hold / : @ % ? # and the like.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>\S*)@")


def url_host(host: str, port: int | None = None) -> str:
    """host[:port] as a URL writes it: an IPv6 address goes in brackets."""
    written = f"[{host}]" if ":" in host else host
    return written if port is None else f"{written}:{port}"


def mask_url(url: str) -> str:
    """The URL as typed, with its password replaced by ****; the user name stays, it helps debugging.

    Holds for any text typed as a URL, well-formed or not: the password is all between the user's colon and the
    last @, whatever characters it holds. Without an @ a URL has no password, but `amqp://user:secret` (the host
    forgotten) would show its "port": a port that is not a number is masked too.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:  # no scheme typed: user:password@host
        scheme, rest = "", url
    start = f"{scheme}{sep}"
    at = rest.rfind("@")
    if at >= 0:
        user, colon, _password = rest[:at].partition(":")
        return f"{start}{user}:{MASK}@{rest[at + 1 :]}" if colon else url
    authority, slash, path = rest.partition("/")
    host, colon, port = authority.rpartition(":")
    if colon and port and not (port.isascii() and port.isdigit()) and not authority.endswith("]"):
        return f"{start}{host}:{MASK}{slash}{path}"
    return url


def mask_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Text with every URL password, and every known secret, replaced by ****."""
    masked = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    for secret in secrets:
        if secret:
            masked = masked.replace(secret, MASK)
    return masked


def unmask_url(url: str, secret_for: Callable[[str, str], str | None]) -> str:
    """Undo mask_url where the user left **** in place: put the known password back.

    `secret_for(username, "host:port")` finds the password; a URL with no
    mask, or one whose password is unknown, comes back unchanged.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    if parts.password != MASK or parts.hostname is None:
        return url
    username = unquote(parts.username or "")
    host = url_host(parts.hostname, port)
    password = secret_for(username, host)
    if password is None:
        return url
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
