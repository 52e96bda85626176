"""Keep passwords out of everything a person or a log can see."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "****"

# user:password@ inside any URL-like text, e.g. in a library's exception message.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s/]*)@")


def url_host(host: str, port: int | None = None) -> str:
    """host[:port] as a URL writes it: an IPv6 address goes in brackets."""
    written = f"[{host}]" if ":" in host else host
    return written if port is None else f"{written}:{port}"


def mask_url(url: str) -> str:
    """The URL with its password replaced by ****; the user name stays, it helps debugging."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_text(url)
    if parts.password is None:
        return url
    try:
        host = url_host(parts.hostname or "", parts.port)
    except ValueError:
        return mask_text(url)
    netloc = f"{parts.username or ''}:{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


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
