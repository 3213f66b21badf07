"""Where tenants' webhooks may point: the targets the trust probe found accepted."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from core.errors import InvalidRequestError
from server.security.outbound import TargetRefusedError, WebhookPolicy, is_public

PRODUCTION = WebhookPolicy(production=True)
DEVELOPMENT = WebhookPolicy(production=False)


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",  # cloud metadata
        "https://localhost:8100/admin/audit",
        "https://[::1]:22/",
        "https://0.0.0.0:8000/",
        "https://10.0.0.1/hook",
        "https://192.168.1.20/hook",
        "https://100.64.0.7/hook",  # carrier-grade NAT
        "https://[::ffff:127.0.0.1]/hook",  # loopback written as IPv6
    ],
)
def test_private_loopback_and_metadata_targets_are_refused_in_production(url: str) -> None:
    with pytest.raises(InvalidRequestError, match=r"webhook\.url"):
        PRODUCTION.check_config(url, has_secret=True)


def test_credentials_in_the_url_plain_http_and_unsigned_webhooks_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match="user name or password"):
        DEVELOPMENT.check_config("http://user:pass@10.0.0.1/", has_secret=True)
    with pytest.raises(InvalidRequestError, match="https"):
        PRODUCTION.check_config("http://help.example.com/hook", has_secret=True)
    with pytest.raises(InvalidRequestError, match=r"webhook\.secret"):
        PRODUCTION.check_config("https://help.example.com/hook", has_secret=False)
    PRODUCTION.check_config("https://help.example.com/hook", has_secret=True)


def test_development_allows_loopback_but_not_the_private_network() -> None:
    DEVELOPMENT.check_config("http://127.0.0.1:9000/hook", has_secret=False)
    with pytest.raises(InvalidRequestError):
        DEVELOPMENT.check_config("http://169.254.169.254/", has_secret=False)


def test_the_operator_may_allow_a_private_host() -> None:
    allowed = WebhookPolicy.for_deployment(True, ["10.0.0.5", "Helpdesk.Internal"])
    allowed.check_config("https://10.0.0.5/hook", has_secret=True)
    allowed.check_config("https://helpdesk.internal/hook", has_secret=True)
    asyncio.run(allowed.check_target("https://helpdesk.internal/hook"))


def test_a_name_is_checked_by_the_addresses_it_resolves_to_at_delivery() -> None:
    PRODUCTION.check_config("https://localtest.example/hook", has_secret=True)  # a name passes
    with pytest.raises(TargetRefusedError, match="not a public address"):
        asyncio.run(PRODUCTION.check_target("https://localhost/hook"))
    with pytest.raises(TargetRefusedError, match="not a public address"):
        asyncio.run(PRODUCTION.check_target("https://127.0.0.1/hook"))


@pytest.mark.parametrize(
    ("address", "public"),
    [("8.8.8.8", True), ("2606:4700::1111", True), ("172.16.3.4", False), ("fe80::1", False)],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public
