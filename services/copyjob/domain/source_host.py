"""Where a copy may connect: the source host the user typed, checked before any connection.

The user names a host and port; we connect to an address, and that address is what is checked:
a name is resolved once (by the caller) and the addresses it gives are checked here, and the one
connected to is one of them. Loopback, private, link-local, multicast, reserved and cloud metadata
addresses are refused unless allow-listed (settings). IP literals in any spelling the C library
would accept (`127.1`, `0x7f000001`, `2130706433`, `017700000001`, `::ffff:127.0.0.1`) are read
as the address they mean. Pure; no I/O."""

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOST_LENGTH = 253
_NAME_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
METADATA = (ipaddress.ip_network("169.254.169.254/32"), ipaddress.ip_network("fd00:ec2::254/128"),
            ipaddress.ip_network("100.100.100.200/32"))
"""cloud metadata endpoints (AWS/GCP/Azure, AWS IPv6, Alibaba)"""


class HostRefused(ValueError):
    """The source host may not be connected to; the message says why (never a secret)."""


@dataclass(frozen=True)
class Source:
    host: str
    """as the user gave it (lowercased name, or the literal): what TLS verifies against"""
    literal: Address | None
    """the address an IP literal means; None for a name (resolve it, then `check` each address)"""


def parse_host(text: str) -> Source:
    host = text.strip().lower().rstrip(".")
    if not host or len(host) > MAX_HOST_LENGTH:
        raise HostRefused(f"the source host must be 1 to {MAX_HOST_LENGTH} characters")
    if (literal := ip_literal(host)) is not None:
        return Source(host=host, literal=literal)
    labels = host.split(".")
    if not host.isascii() or not all(_NAME_LABEL.fullmatch(label) for label in labels):
        raise HostRefused("the source host must be a host name (letters, digits, - and .) or an IP address")
    if labels[-1].isdigit() or re.fullmatch(r"0x[0-9a-f]+", labels[-1]):
        raise HostRefused("the source host looks like a malformed IP address")
    return Source(host=host, literal=None)


def ip_literal(host: str) -> Address | None:
    """The address an IP literal means, however it is spelled; None when `host` is no literal."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        try:  # inet_aton reads the legacy forms: 127.1, 0x7f000001, 2130706433, 0177.0.0.1
            address = ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check(address: Address, allowed: Sequence[Network] = ()) -> None:
    """Refuse an address no copy may connect to, unless an allowed network holds it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed):
        return
    if reason := _forbidden(address):
        raise HostRefused(f"the source host's address {address} is {reason}: a copy only connects to public servers")


def _forbidden(address: Address) -> str | None:
    if any(address in network for network in METADATA):
        return "a cloud metadata endpoint"
    if isinstance(address, ipaddress.IPv6Address) and (address.sixtofour or address.teredo):
        return "a tunnel address"  # before is_private, which counts some tunnel ranges in older 3.11 releases
    for test, reason in ((address.is_loopback, "loopback"), (address.is_link_local, "link-local"),
                         (address.is_multicast, "multicast"), (address.is_unspecified, "unspecified"),
                         (address.is_reserved, "reserved"), (address.is_private, "private")):
        if test:
            return reason
    return None


def check_all(addresses: Iterable[Address], allowed: Sequence[Network] = ()) -> list[Address]:
    """Every address a name resolved to must pass (one bad answer refuses the name: DNS rebinding
    and split answers must not pick the connection)."""
    found = list(dict.fromkeys(addresses))
    if not found:
        raise HostRefused("the source host has no address")
    for address in found:
        check(address, allowed)
    return found
