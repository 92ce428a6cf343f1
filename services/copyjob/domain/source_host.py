"""Where a copy may connect: the source host the user typed, checked before any connection.

The user names a host and port; we connect to an address, and that address is what is checked:
a name is resolved once (by the caller) and the addresses it gives are checked here, and the one
connected to is one of them. Every special-purpose address is refused unless allow-listed (settings):
an explicit table of IANA's IPv4 and IPv6 special-purpose registries (loopback, private, shared
CGNAT space, link-local, documentation, benchmarking, multicast, reserved, cloud metadata), not the
standard library's flags, which differ between Python releases; an IPv6 address that carries an
IPv4 one (IPv4-mapped, NAT64, 6to4) is judged by the address it leads to, and only global unicast
IPv6 (2000::/3) passes at all. IP literals in any spelling the C library
would accept (`127.1`, `0x7f000001`, `2130706433`, `017700000001`, `::ffff:127.0.0.1`) are read
as the address they mean. Pure; no I/O."""

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.contracts.copyjob import CopyjobFieldCode

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOST_LENGTH = 253
_NAME_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
METADATA = (ipaddress.ip_network("169.254.169.254/32"), ipaddress.ip_network("fd00:ec2::254/128"),
            ipaddress.ip_network("100.100.100.200/32"))
"""cloud metadata endpoints (AWS/GCP/Azure, AWS IPv6, Alibaba)"""


class HostRefused(ValueError):
    """The source host may not be connected to; the message says why (never a secret), `code` and
    `params` say it for a client to word (shared/contracts/copyjob.py)."""

    def __init__(self, message: str, code: CopyjobFieldCode, **params: int | str) -> None:
        super().__init__(message)
        self.code, self.params = code, params


@dataclass(frozen=True)
class Source:
    host: str
    """as the user gave it (lowercased name, or the literal): what TLS verifies against"""
    literal: Address | None
    """the address an IP literal means; None for a name (resolve it, then `check` each address)"""


def parse_host(text: str) -> Source:
    host = text.strip().lower().rstrip(".")
    if not host or len(host) > MAX_HOST_LENGTH:
        raise HostRefused(f"the source host must be 1 to {MAX_HOST_LENGTH} characters", "host_length",
                          min_length=1, max_length=MAX_HOST_LENGTH)
    if (literal := ip_literal(host)) is not None:
        return Source(host=host, literal=literal)
    labels = host.split(".")
    if not host.isascii() or not all(_NAME_LABEL.fullmatch(label) for label in labels):
        raise HostRefused("the source host must be a host name (letters, digits, - and .) or an IP address",
                          "not_a_host_name")
    if labels[-1].isdigit() or re.fullmatch(r"0x[0-9a-f]+", labels[-1]):
        raise HostRefused("the source host looks like a malformed IP address", "malformed_ip_address")
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
        raise HostRefused(f"the source host's address {address} is {reason}: a copy only connects to public servers",
                          "not_public", address=str(address))


def _networks(*rows: tuple[str, str]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(network), reason) for network, reason in rows)


SPECIAL_V4 = _networks(
    ("0.0.0.0/8", "unspecified ('this network')"), ("10.0.0.0/8", "private"), ("100.64.0.0/10", "shared (CGNAT) space"),
    ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local"), ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved for IETF protocols"), ("192.0.2.0/24", "documentation"), ("192.31.196.0/24", "AS112 (reserved)"),
    ("192.52.193.0/24", "AMT (reserved)"), ("192.88.99.0/24", "a 6to4 relay (reserved)"), ("192.168.0.0/16", "private"),
    ("192.175.48.0/24", "AS112 (reserved)"), ("198.18.0.0/15", "benchmarking"), ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"), ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"),
)
"""IANA IPv4 Special-Purpose Address Registry, and multicast"""
SPECIAL_V6 = _networks(
    ("::/128", "unspecified"), ("::1/128", "loopback"), ("64:ff9b:1::/48", "local-use translation"),
    ("100::/64", "discard-only"), ("2001::/23", "reserved for IETF protocols (Teredo tunnels among them)"),
    ("2001:db8::/32", "documentation"), ("2620:4f:8000::/48", "AS112 (reserved)"), ("3fff::/20", "documentation"),
    ("fc00::/7", "private (unique local)"), ("fe80::/10", "link-local"), ("ff00::/8", "multicast"),
)
"""IANA IPv6 Special-Purpose Address Registry (within or beside global unicast), and multicast"""
GLOBAL_V6 = ipaddress.ip_network("2000::/3")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SIXTOFOUR = ipaddress.ip_network("2002::/16")


def _forbidden(address: Address) -> str | None:
    if any(address in network for network in METADATA):
        return "a cloud metadata endpoint"
    if isinstance(address, ipaddress.IPv4Address):
        return next((reason for network, reason in SPECIAL_V4 if address in network), None)
    if (carried := _carried_ipv4(address)) is not None:
        reason = _forbidden(carried)
        return f"a tunnel to {carried}, which is {reason}" if reason else None
    if reason := next((reason for network, reason in SPECIAL_V6 if address in network), None):
        return reason
    return None if address in GLOBAL_V6 else "outside global unicast (reserved)"


def _carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one leads to: IPv4-mapped, NAT64's well-known prefix, 6to4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in SIXTOFOUR:
        return ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
    return None


def check_all(addresses: Iterable[Address], allowed: Sequence[Network] = ()) -> list[Address]:
    """Every address a name resolved to must pass (one bad answer refuses the name: DNS rebinding
    and split answers must not pick the connection)."""
    found = list(dict.fromkeys(addresses))
    if not found:
        raise HostRefused("the source host has no address", "no_address")
    for address in found:
        check(address, allowed)
    return found
