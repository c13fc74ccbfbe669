"""The address of the client behind the reverse proxies the operator trusts."""

import ipaddress

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parsed(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address, proxies: list[Network]) -> bool:
    return any(address in network for network in proxies)


def client_address(request) -> str:
    """REMOTE_ADDR, or, when it is one of settings.SERVER_TRUSTED_PROXIES, the X-Forwarded-For hop
    nearest to it that no trusted proxy holds.

    Each proxy appends the address it was reached from, so only the hops to the right of the last
    untrusted one were written by proxies we trust; whatever stands left of it the client wrote.
    A hop that is not an address ends the walk at the proxy that passed it on.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.SERVER_TRUSTED_PROXIES
    address = _parsed(remote) if proxies else None
    if address is None or not _trusted(address, proxies):
        return remote
    for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        parsed = _parsed(hop)
        if parsed is None:
            break
        address = parsed
        if not _trusted(address, proxies):
            break
    return str(address)
