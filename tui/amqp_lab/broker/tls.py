"""One TLS context for AMQPS and the management API's HTTPS, built from the settings."""

from __future__ import annotations

import ssl

from amqp_lab.config import SettingsError, TlsOptions


def tls_context(options: TlsOptions) -> ssl.SSLContext:
    """A client context: verification on unless the user turned it off."""
    try:
        context = ssl.create_default_context(cafile=str(options.ca_file) if options.ca_file else None)
        if options.cert_file:
            context.load_cert_chain(str(options.cert_file), str(options.key_file) if options.key_file else None)
    except ssl.SSLError as exc:
        raise SettingsError(f"cannot load the TLS files: {exc.reason or exc}") from None
    if not options.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
