"""Outbound target validation: http/https only, and no loopback/private/link-local addresses unless
the config allows them (``allow_private_targets``) — a rule file must not become a way to reach
internal services."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class TargetRefused(ValueError):
    """A target URL that is not allowed; the message says why."""


def _is_private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_unspecified or ip.is_multicast


def check_url_syntax(url: str, *, allow_private: bool) -> str:
    """Check scheme, host and (for literal IPs) the address; no DNS. Returns the host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetRefused(f"target {url!r}: only http and https URLs are allowed, got scheme {parts.scheme!r}")
    host = parts.hostname
    if not host:
        raise TargetRefused(f"target {url!r} has no host")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and not allow_private and _is_private(ip):
        raise TargetRefused(
            f"target {url!r} is a loopback/private/link-local address; set allow_private_targets to allow it"
        )
    if ip is None and not allow_private and host.lower() in ("localhost", "localhost.localdomain"):
        raise TargetRefused(f"target {url!r} is loopback; set allow_private_targets to allow it")
    return host


def check_url(url: str, *, allow_private: bool) -> None:
    """:func:`check_url_syntax` plus a DNS check at send time: every resolved address must be public."""
    host = check_url_syntax(url, allow_private=allow_private)
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as e:
        raise TargetRefused(f"target {url!r}: cannot resolve {host!r}: {e}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if _is_private(ip):
            raise TargetRefused(f"target {url!r} resolves to {ip}, a private address; set allow_private_targets")
