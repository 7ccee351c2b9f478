"""Where notifications may go: the SSRF policy, enforced on the address actually connected to.

A rule file names URLs, and an alert sender running inside a network is a classic
server-side request forgery vector (cloud metadata at 169.254.169.254, admin
ports on localhost, internal services). Checking the URL text is not enough:
`http://2130706433/`, `http://0x7f.1/`, `[::ffff:127.0.0.1]`, a DNS name that
resolves to 127.0.0.1, or one that resolves differently the second time (DNS
rebinding) all reach loopback. So the check runs inside the connection
machinery: each new connection of the notifier's client (http11.py) resolves
the name itself, refuses if *any* resolved address is forbidden, and connects
to the checked address, so what was checked is what is used. Redirects are never followed (a 3xx is a
failed delivery).

Allowlist: `allow_hosts` matches the URL's host as written (canonicalised for IP
literals), `allow_networks` matches resolved addresses. Tests use
`allow_hosts={"127.0.0.1"}`.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import certifi

from runtime.notify.errors import DestinationRefused

if typing.TYPE_CHECKING:
    from runtime.notify.http11 import GuardedHttpClient

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Not global, but not flagged by every Python's ipaddress tables either.
_EXTRA_DENIED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
        "100.64.0.0/10",  # shared address space (carrier NAT)
        "2001:db8::/32",  # documentation
    )
)
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


# --------------------------------------------------------------------------- addresses


def parse_ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any form inet_aton accepts: `2130706433`, `0x7f.1`, `017700000001`, `127.1`."""
    h = host.rstrip(".")
    parts = h.split(".")
    if not 1 <= len(parts) <= 4 or any(p == "" for p in parts):
        return None
    nums: list[int] = []
    for p in parts:
        try:
            if p[:2].lower() == "0x":
                n = int(p[2:] or "0", 16)
            elif len(p) > 1 and p[0] == "0":
                n = int(p[1:], 8)
            else:
                n = int(p, 10)
        except ValueError:
            return None
        nums.append(n)
    *head, last = nums
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = 0
    for n in head:
        value = value * 256 + n
    value = value * 256 ** (4 - len(head)) + last
    return ipaddress.IPv4Address(value)


def parse_ip(host: str) -> IPAddress | None:
    """The IP address a host string denotes by itself (no DNS), or None for a name."""
    h = host.strip("[]")
    if h.lower().rstrip(".") == "localhost" or h.lower().rstrip(".").endswith(".localhost"):
        # RFC 6761: always loopback, whatever a resolver says; decided without DNS.
        return ipaddress.IPv4Address("127.0.0.1")
    if "%" in h:  # IPv6 zone id: fe80::1%eth0
        h = h.split("%", 1)[0]
    try:
        return ipaddress.ip_address(h)
    except ValueError:
        return parse_ipv4_loose(h)


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why `ip` may not be contacted by default, or None when it is a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        # Addresses that embed an IPv4 address are judged by what they embed.
        if ip.ipv4_mapped is not None:
            inner = forbidden_reason(ip.ipv4_mapped)
            return f"IPv4-mapped {inner}" if inner else None
        if ip in _NAT64:
            inner = forbidden_reason(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
            return f"NAT64 {inner}" if inner else None
        if ip in _NAT64_LOCAL:
            return "local-use NAT64"
        if ip.sixtofour is not None:
            inner = forbidden_reason(ip.sixtofour)
            return f"6to4 {inner}" if inner else None
        if ip.teredo is not None:
            inner = forbidden_reason(ip.teredo[1])
            return f"Teredo {inner}" if inner else None
    if ip.is_loopback:
        return "loopback address"
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_link_local:
        return "link-local address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:  # fec0::/10: deprecated, still internal
        return "site-local address"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_private:
        return "private address"
    if ip.is_reserved:
        return "reserved address"
    if any(ip in net for net in _EXTRA_DENIED if net.version == ip.version):
        return "special-purpose address"
    if not ip.is_global:
        return "non-global address"
    return None


# --------------------------------------------------------------------------- policy


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _canonical_host(host: str) -> str:
    ip = parse_ip(host)
    return str(ip) if ip is not None and host.strip("[]") == str(ip) else host.strip("[]").lower().rstrip(".")


@dataclass(frozen=True)
class DestinationPolicy:
    """Which destinations are allowed. Default: public addresses only, http(s) only."""

    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    allow_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def allowing(cls, hosts: Iterable[str] = (), networks: Iterable[str] = ()) -> DestinationPolicy:
        return cls(
            frozenset(_canonical_host(h) for h in hosts),
            tuple(ipaddress.ip_network(n, strict=False) for n in networks),
        )

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> DestinationPolicy:
        """`--allow-host` values: host names or addresses, or networks such as 10.0.0.0/8."""
        entries = list(entries)
        return cls.allowing(hosts=[e for e in entries if "/" not in e], networks=[e for e in entries if "/" in e])

    def host_allowed(self, host: str) -> bool:
        return _canonical_host(host) in self.allow_hosts

    def ip_allowed(self, ip: IPAddress) -> bool:
        if any(ip in net for net in self.allow_networks if net.version == ip.version):
            return True
        return forbidden_reason(ip) is None

    def check_ip(self, host: str, ip: IPAddress) -> None:
        if not self.ip_allowed(ip):
            raise DestinationRefused(f"destination {host} refused: {forbidden_reason(ip)} {ip}")

    def check_url(self, url: str) -> None:
        """Static part of the check (scheme, host, IP literals); names are checked at connect time."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise DestinationRefused(f"invalid URL: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise DestinationRefused(f"URL scheme {parts.scheme!r} is not allowed (http and https only)")
        if not host:
            raise DestinationRefused("URL has no host")
        if self.host_allowed(host):
            return
        ip = parse_ip(host)
        if ip is not None:
            self.check_ip(host, ip)

    async def resolve(self, host: str, port: int, resolver: Resolver = system_resolver) -> list[str]:
        """The addresses to connect to for `host`, all checked; refuses if any is forbidden."""
        if self.host_allowed(host):
            ip = parse_ip(host)
            return [str(ip)] if ip is not None else await resolver(host, port)
        ip = parse_ip(host)
        if ip is not None:
            self.check_ip(host, ip)
            return [str(ip)]
        try:
            addrs = await resolver(host, port)
        except OSError as exc:
            raise ConnectionError(f"cannot resolve {host}: {exc}") from None
        if not addrs:
            raise ConnectionError(f"cannot resolve {host}")
        for a in addrs:
            # A name resolving to one public and one internal address is refused outright:
            # picking the public one would leave the choice to whoever controls the DNS.
            self.check_ip(host, parse_ip(a) or ipaddress.ip_address(a))
        return addrs

    def resolve_sync(self, host: str, port: int) -> list[str]:
        return asyncio.run(self.resolve(host, port))


DEFAULT_POLICY = DestinationPolicy()


# --------------------------------------------------------------------------- clients


@functools.lru_cache(maxsize=1)
def default_ssl_context() -> ssl.SSLContext:
    """Verifying TLS context, built once: loading the CA bundle costs tens of milliseconds.

    certifi's bundle rather than the system store, so a slim container without
    ca-certificates still verifies the public webhook hosts.
    """
    return ssl.create_default_context(cafile=certifi.where())


def guarded_client(
    policy: DestinationPolicy,
    *,
    resolver: Resolver = system_resolver,
    ssl_context: ssl.SSLContext | None = None,
    max_connections: int = 100,
) -> GuardedHttpClient:
    """The one pooled client the notifier uses: guarded, no redirects, no env proxies.

    runtime/notify/http11.py, the small asyncio HTTP/1.1 client: it checks every
    new connection's resolved address against `policy`.
    """
    from runtime.notify.http11 import GuardedHttpClient  # here: http11 imports this module

    return GuardedHttpClient(policy, resolver=resolver, ssl_context=ssl_context, max_connections=max_connections)


def guarded_socket(policy: DestinationPolicy, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection for blocking clients (smtplib), to a checked address."""
    addrs = policy.resolve_sync(host, port)
    last: OSError | None = None
    for addr in addrs:
        try:
            return socket.create_connection((addr, port), timeout=timeout)
        except OSError as exc:
            last = exc
    assert last is not None
    raise last
