"""Who a web visitor is, for the limits that count per visitor (cooldown, faces on the way, daily quota).

A visitor is the address that connected, unless that address is a trusted reverse proxy
(``T2F_TRUSTED_PROXIES``): then the proxy's forwarded header is read from the right, skipping trusted
proxies, and the first other address is the visitor. Everything to the left of it was written by the
visitor and is ignored, so nobody picks their own identity. ``X-Forwarded-For`` is read when present
(every common proxy appends to it), else RFC 7239's ``Forwarded``.

IPv6 visitors are grouped by their /64: one household or one server gets a /64 and picks addresses in
it at will, so counting addresses would make one person many visitors. An IPv4 address mapped into
IPv6 (``::ffff:192.0.2.1``) is that IPv4 address.

Examples
--------
>>> visitor_key("2001:db8:1:2:aaaa::1", forwarded_for=[], forwarded=[], trusted=())
'2001:db8:1:2::/64'
>>> proxy = (ipaddress.ip_network("10.0.0.0/8"),)
>>> visitor_key("10.0.0.2", forwarded_for=["6.6.6.6, 198.51.100.7"], forwarded=[], trusted=proxy)
'198.51.100.7'
>>> visitor_key("192.0.2.9", forwarded_for=["198.51.100.7"], forwarded=[], trusted=proxy)
'192.0.2.9'
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
VisitorKey = str  # an IPv4 address, an IPv6 /64 network, or "unknown"
IPV6_VISITOR_PREFIX = 64
UNKNOWN = "unknown"


def parse_address(text: str) -> Address | None:
    """The address in a peer name or a forwarded hop (``1.2.3.4``, ``1.2.3.4:80``, ``"[2001:db8::1]:443"``)."""
    value = text.strip().strip('"')
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:  # address:port; more colons are an IPv6 address
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped or address


def forwarded_for_hops(headers: Sequence[str]) -> list[str]:
    """The hops of ``X-Forwarded-For`` headers, first (the visitor, as claimed) to last (the nearest proxy)."""
    return [hop.strip() for header in headers for hop in header.split(",") if hop.strip()]


def forwarded_hops(headers: Sequence[str]) -> list[str]:
    """The ``for=`` values of RFC 7239 ``Forwarded`` headers, in order (an element without one is skipped)."""
    hops = []
    for element in (element for header in headers for element in header.split(",")):
        pairs = (pair.partition("=") for pair in element.split(";"))
        hops += [value.strip() for key, _, value in pairs if key.strip().lower() == "for"]
    return hops


def visitor_address(
    peer: str | None, *, forwarded_for: Sequence[str], forwarded: Sequence[str], trusted: Sequence[Network]
) -> Address | None:
    """The visitor's address: ``peer``, or the nearest untrusted hop when ``peer`` is a trusted proxy.

    A hop that is no address (``unknown``, an obfuscated ``_name``) ends the walk at the last trusted
    address: what lies beyond it cannot be told apart.
    """
    nearest = parse_address(peer or "")
    if nearest is None or not _is_trusted(nearest, trusted):
        return nearest
    hops = forwarded_for_hops(forwarded_for) if forwarded_for else forwarded_hops(forwarded)
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            return nearest
        nearest = address
        if not _is_trusted(address, trusted):
            return address
    return nearest


def visitor_key(
    peer: str | None, *, forwarded_for: Sequence[str], forwarded: Sequence[str], trusted: Sequence[Network]
) -> VisitorKey:
    """The visitor as the limits count them: the IPv4 address, or the IPv6 address's /64."""
    address = visitor_address(peer, forwarded_for=forwarded_for, forwarded=forwarded, trusted=trusted)
    if address is None:
        return UNKNOWN
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(address), IPV6_VISITOR_PREFIX), strict=False))  # no zone (%eth0)
    return str(address)


def _is_trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)
