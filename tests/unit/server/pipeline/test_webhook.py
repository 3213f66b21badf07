"""Ticket webhooks against a real HTTP receiver on loopback: signature, retries, give-up."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server.pipeline.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, deliver, sign, verify
from server.security.outbound import WebhookPolicy, pinned
from server.store.tickets import WebhookStatus
from server.tenants import Webhook
from tests.webhook_receiver import Receiver, receiving


@pytest.fixture
def receiver() -> Iterator[str]:
    with receiving() as url:
        yield url


def run(config: Webhook) -> Any:
    async def go() -> Any:
        async with httpx.AsyncClient() as client:
            return await deliver(client, config, {"event": "ticket.created", "ticket": {"id": 1}})

    return asyncio.run(go())


def test_signature_round_trip() -> None:
    signature = sign(b"k", "123", b"{}")
    assert signature.startswith("sha256=") and verify(b"k", "123", b"{}", signature)
    assert not verify(b"k", "124", b"{}", signature) and not verify(b"k", "123", b"{ }", signature)


def test_delivery_is_signed_and_retried_through_5xx(receiver: str) -> None:
    Receiver.statuses = [500, 429]
    result = run(Webhook(url=receiver, secret="s3cret", attempts=4, backoff_s=0.01))
    assert result.status is WebhookStatus.DELIVERED and result.attempts == 3
    headers, body = Receiver.bodies[-1]
    assert verify(
        b"s3cret", headers[TIMESTAMP_HEADER.lower()], body, headers[SIGNATURE_HEADER.lower()]
    )


def test_a_refusing_receiver_is_not_retried_and_a_dead_one_fails(receiver: str) -> None:
    Receiver.statuses = [410]
    refused = run(Webhook(url=receiver, secret="s", attempts=4, backoff_s=0.01))
    assert refused.status is WebhookStatus.FAILED and refused.attempts == 1
    # the tenant admin reads the outcome, not the target's answer (the probe's finding 7)
    assert refused.error == "the receiver refused the delivery"
    dead = run(Webhook(url="http://127.0.0.1:9/hook", attempts=2, backoff_s=0.01, timeout_s=1))
    assert dead.status is WebhookStatus.FAILED and dead.attempts == 2
    assert dead.error == "the receiver did not answer"
    assert run(Webhook()).status is WebhookStatus.NOT_CONFIGURED


def test_a_delivery_connects_to_the_checked_address_and_never_resolves_the_name_again(
    receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: ``rebind.test`` answers the receiver's loopback address to the policy's
    check and an unroutable one to anyone asking after. The delivery must reach the
    receiver (it connects to the checked address) and name the host in ``Host``."""
    port = int(receiver.rsplit(":", 1)[1].split("/")[0])
    answers = iter(["127.0.0.1"])
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            address = next(answers, "192.0.2.1")  # TEST-NET-1: nothing answers there
            return real_getaddrinfo(address, *args, **kwargs)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    config = Webhook(url=f"http://rebind.test:{port}/hook", attempts=1, timeout_s=2)

    async def go() -> Any:
        addresses = await WebhookPolicy().check_target(str(config.url))
        async with httpx.AsyncClient() as client:
            payload = {"event": "ticket.created", "ticket": {"id": 1}}
            return addresses, await deliver(client, config, payload, addresses)

    addresses, result = asyncio.run(go())
    assert addresses == ("127.0.0.1",)
    assert result.status is WebhookStatus.DELIVERED, result
    headers, _ = Receiver.bodies[-1]
    assert headers["host"] == f"rebind.test:{port}"


def test_a_pinned_https_request_names_the_host_for_tls() -> None:
    target = pinned("https://help.example.com:8443/hook?x=1", "2606:4700::1111")
    assert target.url == "https://[2606:4700::1111]:8443/hook?x=1"
    assert target.headers == {"Host": "help.example.com:8443"}
    assert target.extensions == {"sni_hostname": "help.example.com"}
    assert pinned("https://help.example.com/hook", None).url == "https://help.example.com/hook"
