"""HTTPS and WSS served directly from HUIZHEN_TLS_CERT_FILE / HUIZHEN_TLS_KEY_FILE (PEM).

Browsers only open the camera (getUserMedia) in a secure context: a kiosk on another machine
needs HTTPS, from here or from a reverse proxy (docs/deployment.md).
"""

from __future__ import annotations

import ssl

from server.config import Settings
from server.errors import ConfigurationError


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the listening socket, or None for plain HTTP."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cannot load HUIZHEN_TLS_CERT_FILE / HUIZHEN_TLS_KEY_FILE: {exc}"
        ) from exc
    # aiohttp speaks HTTP/1.1 only; say so rather than let a client try h2.
    context.set_alpn_protocols(["http/1.1"])
    return context


def open_url(settings: Settings) -> str:
    """The address to print for people: HUIZHEN_PUBLIC_URL, else this listener's own."""
    if settings.public_url:
        return settings.public_url + "/"
    scheme = "https" if settings.tls else "http"
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # listening everywhere: this machine's own address works
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{settings.port}/"
