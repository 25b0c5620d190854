"""Which endpoints are this machine: shared by the cloud adapters (plain HTTP only to a
loopback endpoint) and the emulator (its admin API answers only a loopback ``Host``).
Neither side's interpretation of the cloud: only what an address is."""

from __future__ import annotations

import ipaddress


def host_of(endpoint: str) -> str:
    """``http://h:p/x`` · ``h:p`` · ``[::1]:p`` · ``h`` → the host alone."""
    host = endpoint.strip().split("://", 1)[-1].split("/", 1)[0]
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_ip(endpoint: str) -> bool:
    try:
        ipaddress.ip_address(host_of(endpoint))
        return True
    except ValueError:
        return False


def is_loopback(endpoint: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` (with or without a port): this machine."""
    host = host_of(endpoint)
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
