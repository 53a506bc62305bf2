"""Where a webhook may send: public addresses only, unless the operator allows a network.

A webhook's URL is typed by an administrator and the worker POSTs to it, so without a rule
the portal would reach whatever the worker can (loopback, Redis, the cloud's metadata
service, the private network) and the delivery's recorded answer would say which ports are
open there. So a name is resolved at delivery time and the connection goes to an address
that was checked (no second lookup a rebinding DNS server could answer differently);
loopback, link-local, private, unspecified, multicast and reserved addresses are refused
unless ``VDI_WEBHOOK_ALLOWED_NETWORKS`` lists a network that holds them.

Pure: plain values in, plain values out (no database), so the settings, the admin's form
and the worker share it.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from urllib.parse import urlsplit

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

# What the admin sees for a refused target: the same words whatever the address and port, so
# that the delivery list cannot be read as a port scan.
REFUSED = "refused: the address is not allowed for webhooks"


class Refused(Exception):
    """The URL's host is, or resolves only to, addresses webhooks may not reach."""


class Unresolved(Exception):
    """The URL's host name did not resolve (a passing DNS problem, perhaps)."""


@dataclass(frozen=True)
class Target:
    """Where one delivery goes: the URL's parts and the checked addresses to connect to."""

    scheme: str  # http or https
    host: str  # the name (or literal address) for the Host header and TLS
    port: int
    path: str  # path and query, as sent on the request line
    addresses: tuple[Address, ...]  # allowed ones, in the resolver's order


def _plain(address: Address) -> Address:
    """An IPv4 address written as IPv6 (``::ffff:127.0.0.1``) is the IPv4 address."""
    mapped = address.ipv4_mapped if isinstance(address, IPv6Address) else None
    return mapped or address


def _public(address: Address) -> bool:
    if isinstance(address, IPv6Address):
        embedded = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None and not _public(embedded):
            return False
        if address.is_site_local:
            return False
    return address.is_global and not (address.is_multicast or address.is_reserved)


def allowed(address: Address, networks: Sequence[Network]) -> bool:
    """A public unicast address, or one in a network the operator allows."""
    address = _plain(address)
    return _public(address) or any(address in network for network in networks)


def addresses_of(host: str, port: int) -> tuple[Address, ...]:
    """The host's addresses: itself when it is a literal, else what the resolver says."""
    try:
        return (ip_address(host),)
    except ValueError:
        pass
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Unresolved(f"the name {host!r} did not resolve ({exc})") from None
    found: dict[Address, None] = {}
    for *_, sockaddr in answers:
        found.setdefault(ip_address(str(sockaddr[0]).partition("%")[0]), None)
    return tuple(found)


def split(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path and query) of an http(s) URL; ValueError for anything else."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http:// or https:// URL")
    port = parts.port or (443 if scheme == "https" else 80)  # ValueError for a bad port
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port, path


def target_of(url: str, networks: Sequence[Network]) -> Target:
    """Where a delivery to ``url`` may connect. Raises ValueError (not an http(s) URL),
    Unresolved, or Refused when no address of the host is allowed."""
    scheme, host, port, path = split(url)
    addresses = tuple(a for a in addresses_of(host, port) if allowed(a, networks))
    if not addresses:
        raise Refused(host)
    return Target(scheme, host, port, path, addresses)


def problem_with(url: str, networks: Sequence[Network]) -> str | None:
    """Why a webhook with this URL could never be delivered, when saving it: a refused
    literal address, or a name that resolves only to refused ones. A name that does not
    resolve now is let through: delivery time decides."""
    try:
        target_of(url, networks)
    except Refused:
        return ("Webhooks may not be sent to this address (loopback, link-local, private, "
                "unspecified, multicast and reserved addresses are refused unless "
                "VDI_WEBHOOK_ALLOWED_NETWORKS lists them).")
    except (ValueError, Unresolved):
        pass  # the URL validator speaks for a bad URL; DNS may answer by delivery time
    return None
