"""Where the server may send requests a tenant configures: webhook targets.

A tenant admin writes the webhook URL, and the server then POSTs ticket transcripts to it
from inside the operator's network. Unchecked, that lets a tenant make the server reach
what only it can reach: the cloud metadata service (``169.254.169.254``), the admin API
on loopback, databases on the private network (server-side request forgery). So:

* the URL may carry no user name or password, and must be ``https`` in production;
* its host, and every address its name resolves to at delivery time (a name can be
  re-pointed after it was checked), must be a public address: loopback, private,
  link-local, carrier-grade NAT, multicast, reserved and unspecified addresses are
  refused unless the operator lists the host in ``CONCIERGE_WEBHOOK_ALLOWED_HOSTS``
  (in development, loopback is allowed: a receiver on the developer's own machine);
* in production a webhook needs a signing secret, or receivers could not tell our
  tickets from forged ones;
* the delivery connects to the address that was checked (``pinned``), with the name in
  the ``Host`` header and as the TLS server name: a name that answers a public address to
  the check and a private one a moment later (DNS rebinding) is never resolved again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from core.errors import InvalidRequestError

_CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")


class TargetRefusedError(Exception):
    """A webhook target the policy does not allow; the message says why."""


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """An address on the public internet: none of the ranges a server keeps to itself."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in _CARRIER_GRADE_NAT
    )


@dataclass(frozen=True)
class WebhookPolicy:
    """What the operator allows tenants' webhooks to reach."""

    production: bool = False
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def for_deployment(cls, production: bool, allowed_hosts: list[str]) -> WebhookPolicy:
        return cls(production, frozenset(host.strip().lower() for host in allowed_hosts))

    def _allowed(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return is_public(address) or (not self.production and address.is_loopback)

    def check_config(self, url: str | None, has_secret: bool) -> None:
        """Refuse a webhook URL that could never be delivered to (at install time)."""
        if url is None:
            return
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            raise InvalidRequestError(
                "webhook.url: no user name or password in the URL; sign with webhook.secret",
                param="webhook.url",
            )
        if self.production and parts.scheme != "https":
            raise InvalidRequestError(
                "webhook.url: must be https in production", param="webhook.url"
            )
        if self.production and not has_secret:
            raise InvalidRequestError(
                "webhook.secret: a webhook needs a signing secret in production",
                param="webhook.secret",
            )
        host = (parts.hostname or "").lower()
        if host in self.allowed_hosts:
            return
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            if self.production and (host == "localhost" or host.endswith(".localhost")):
                raise InvalidRequestError(
                    f"webhook.url: {host} is this machine; list it in "
                    "CONCIERGE_WEBHOOK_ALLOWED_HOSTS to allow it",
                    param="webhook.url",
                ) from None
            return  # a name: its addresses are checked at every delivery
        if not self._allowed(literal):
            raise InvalidRequestError(
                f"webhook.url: {host} is not a public address; list it in "
                "CONCIERGE_WEBHOOK_ALLOWED_HOSTS to allow it",
                param="webhook.url",
            )

    async def check_target(self, url: str) -> tuple[str, ...]:
        """Refuse a delivery whose host now resolves to an address the policy forbids; the
        checked addresses to connect to (none for a host the operator listed: by name)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host in self.allowed_hosts:
            return ()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise TargetRefusedError(f"{host} does not resolve ({exc})") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        for address in addresses:
            if not self._allowed(address):
                raise TargetRefusedError(f"{host} resolves to {address}, not a public address")
        if not addresses:
            raise TargetRefusedError(f"{host} resolves to no address")
        return tuple(dict.fromkeys(str(address) for address in addresses))


@dataclass(frozen=True)
class PinnedRequest:
    """How to reach a URL's host at one checked address, and still be the host's client."""

    url: str
    """The URL with the address in place of the name."""
    headers: dict[str, str]
    """``Host``: the name, as the receiver's virtual hosting expects it."""
    extensions: dict[str, str]
    """``sni_hostname`` for https: TLS names, and verifies the certificate of, the name."""


def pinned(url: str, address: str | None) -> PinnedRequest:
    """``url`` to be sent to ``address`` instead of resolving its host again; unchanged
    when ``address`` is None."""
    if address is None:
        return PinnedRequest(url, {}, {})
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    literal = f"[{address}]" if ":" in address else address
    named = f"[{host}]" if ":" in host else host
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return PinnedRequest(
        urlunsplit(parts._replace(netloc=f"{literal}{port}")),
        {"Host": f"{named}{port}"},
        extensions,
    )
