"""The request a user names on the command line: ``URL``, ``host:port`` or ``IP:port``.

Rules (curl's reading, with TCP for the bare ``host:port`` form):
- ``http://host[:port]/path`` and a bare ``host`` or ``host/path``: HTTP, port 80 unless given.
- ``https://host[:port]/path``: TLS with SNI ``host`` (none for an address), port 443.
- ``host:port`` or ``IP:port`` without a scheme: a raw TCP connection (TLS with
  ``tls://host:port``).
- Bad input is a ValueError naming what is wrong.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from meshgate.trace.result import Request

SCHEMES: dict[str, tuple[str, int]] = {
    "http": ("http", 80),
    "https": ("tls", 443),
    "tls": ("tls", 443),
    "tcp": ("tcp", 0),
}


def parse_target(
    target: str, method: str = "GET", headers: tuple[tuple[str, str], ...] = ()
) -> Request:
    text = target.strip()
    if not text:
        raise ValueError("the target is empty: give a URL, host:port or IP:port")
    if "://" not in text:
        _, colon, tail = text.partition("/")[0].rpartition(":")
        text = "tcp://" + text if colon and tail.isdigit() and "/" not in text else "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"{target}: scheme {parts.scheme!r} is not one of http, https, tls, tcp")
    protocol, default_port = SCHEMES[parts.scheme]
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"{target}: no host")
    try:
        port = parts.port or int(default_port)
    except ValueError as exc:
        raise ValueError(f"{target}: {exc}") from None
    if not port:
        raise ValueError(f"{target}: a TCP target needs a port (host:port)")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Request(protocol, host, port, path, method.upper(), headers)


def parse_header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise ValueError(f"header {text!r}: write it as 'Name: value'")
    return name.strip(), value.strip()
