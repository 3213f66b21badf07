"""Signed webhooks that tell a tenant's help-desk about a new ticket.

The body is JSON; ``X-Concierge-Signature: sha256=<hex>`` is the HMAC-SHA256 of
``<timestamp>.<body>`` with the tenant's secret, and ``X-Concierge-Timestamp`` carries
the timestamp, so a receiver can check both origin and freshness (and refuse
replays). Delivery runs after the turn is committed and acknowledged, retries with
exponential backoff on connection errors, timeouts and 5xx/429 answers, gives up on
other 4xx (the receiver refuses this request for good), and records the outcome on
the ticket. A delivery a crash cut off is taken over by the next sweep of any replica, so
a receiver may see a ticket twice: it dedupes by ``ticket_id``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from core import metrics
from core.errors import InvalidRequestError
from server.security.outbound import TargetRefusedError, WebhookPolicy, pinned
from server.store.tickets import Ticket, TicketStore, WebhookStatus
from server.tenants import Webhook

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Concierge-Signature"
TIMESTAMP_HEADER = "X-Concierge-Timestamp"
EVENT_HEADER = "X-Concierge-Event"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` over ``timestamp.body``."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """Constant-time check of a signature (what a receiver does)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass(frozen=True)
class DeliveryResult:
    status: WebhookStatus
    attempts: int
    error: str | None


def ticket_payload(ticket: Ticket) -> dict[str, Any]:
    return {
        "event": "ticket.created",
        "ticket": {
            "ticket_id": ticket.ticket_id,
            "tenant": ticket.tenant,
            "conversation_id": ticket.conversation_id,
            "customer_id": ticket.customer_id,
            "reason": ticket.reason,
            "priority": ticket.priority,
            "status": ticket.status,
            "created_at": ticket.created_at,
            "transcript": ticket.transcript,
        },
    }


async def deliver(
    client: httpx.AsyncClient,
    config: Webhook,
    payload: dict[str, Any],
    addresses: tuple[str, ...] = (),
) -> DeliveryResult:
    """POST ``payload`` to the configured URL with retries; never raises. ``addresses`` are
    the ones the policy checked: the attempts connect to them in turn, never resolving the
    name again (none: by name, a host the operator listed)."""
    if config.url is None:
        return DeliveryResult(WebhookStatus.NOT_CONFIGURED, 0, None)
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    secret = config.secret.get_secret_value().encode() if config.secret else b""
    error: str | None = None
    for attempt in range(1, config.attempts + 1):
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            EVENT_HEADER: str(payload.get("event", "")),
        }
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        address = addresses[(attempt - 1) % len(addresses)] if addresses else None
        target = pinned(str(config.url), address)
        try:
            response = await client.post(
                target.url,
                content=body,
                headers={**headers, **target.headers},
                timeout=config.timeout_s,
                extensions=target.extensions,
            )
        except httpx.HTTPError as exc:
            # what the tenant sees says no more than that; the log has the detail
            error = "the receiver did not answer"
            log.info("webhook attempt %d: %s: %s", attempt, type(exc).__name__, exc)
        else:
            if response.status_code < 300:
                metrics.WEBHOOK_DELIVERIES.labels(outcome="delivered").inc()
                return DeliveryResult(WebhookStatus.DELIVERED, attempt, None)
            log.info("webhook attempt %d: HTTP %d", attempt, response.status_code)
            if response.status_code < 500 and response.status_code != 429:
                error = "the receiver refused the delivery"
                break
            error = "the receiver failed to take the delivery"
        metrics.WEBHOOK_DELIVERIES.labels(outcome="retry").inc()
        if attempt < config.attempts:
            await asyncio.sleep(config.backoff_s * 2 ** (attempt - 1))
    metrics.WEBHOOK_DELIVERIES.labels(outcome="failed").inc()
    log.warning("webhook delivery failed after %d attempts: %s", attempt, error)
    return DeliveryResult(WebhookStatus.FAILED, attempt, error)


SWEEP_INTERVAL_S = 30.0
"""How often a server looks for deliveries no sender holds (a crash, a restart)."""
MAX_DELIVERY_AGE_S = 24 * 3600.0
"""A ticket not delivered within a day is given up (recorded as failed)."""


def lease_for(config: Webhook) -> float:
    """How long one sender holds a delivery: every attempt timing out, every backoff, and
    a margin; past it, another sender may take the delivery over."""
    backoff = sum(config.backoff_s * 2**i for i in range(config.attempts - 1))
    return config.attempts * config.timeout_s + backoff + 30.0


class TicketNotifier:
    """Delivers ticket webhooks in the background and records the outcome.

    The ticket row is the outbox: a ticket with a webhook is stored ``pending`` in the same
    transaction as the turn that escalated, and whoever sends it first takes a lease on it
    (``TicketStore.claim_webhook``), so one delivery runs at a time across replicas. A
    server killed mid-delivery, or stopped before its first attempt, leaves the ticket
    pending; ``sweep`` (at start-up, then every ``SWEEP_INTERVAL_S``, on any replica)
    delivers what no live sender holds.
    """

    def __init__(
        self,
        store: TicketStore,
        policy: WebhookPolicy | None = None,
        config_of: Callable[[str], Webhook] | None = None,
    ) -> None:
        self._store = store
        self._policy = policy or WebhookPolicy()
        self._config_of = config_of
        self._client = httpx.AsyncClient(follow_redirects=False)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def notify(self, ticket: Ticket, config: Webhook) -> None:
        if config.url is None:
            return
        self._spawn(ticket, config)

    def _spawn(self, ticket: Ticket, config: Webhook) -> None:
        task = asyncio.get_running_loop().create_task(self._run(ticket, config))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start_sweeps(self, interval_s: float = SWEEP_INTERVAL_S) -> None:
        """Deliver what earlier processes left owed now, then keep looking every
        ``interval_s`` (needs ``config_of``); call once from the event loop."""
        if self._config_of is not None and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_loop(interval_s), name="webhooks")

    async def _sweep_loop(self, interval_s: float) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # the database may be away for a moment; next time
                log.exception("looking for owed webhook deliveries failed")
            await asyncio.sleep(interval_s)

    async def sweep(self) -> int:
        """Start the deliveries no live sender holds; how many."""
        if self._config_of is None:
            return 0
        owed = await asyncio.to_thread(self._store.owed_webhooks, MAX_DELIVERY_AGE_S)
        for ticket in owed:
            try:
                config = await asyncio.to_thread(self._config_of, ticket.tenant)
            except Exception:
                log.exception("webhook of ticket %s: tenant configuration", ticket.ticket_id)
                continue
            self._spawn(ticket, config)
        if owed:
            log.info("resuming %d owed webhook deliveries", len(owed))
        return len(owed)

    async def _run(self, ticket: Ticket, config: Webhook) -> None:
        claimed = await asyncio.to_thread(
            self._store.claim_webhook, ticket.ticket_id, lease_for(config)
        )
        if not claimed:  # another sender holds it, or it is no longer pending
            return
        checked = await self._checked(config)
        if isinstance(checked, DeliveryResult):
            result = checked
        else:
            result = await deliver(self._client, config, ticket_payload(ticket), checked)
        await asyncio.to_thread(
            self._store.set_webhook_result,
            ticket.ticket_id,
            result.status,
            ticket.webhook_attempts + result.attempts,
            result.error,
        )

    async def _checked(self, config: Webhook) -> DeliveryResult | tuple[str, ...]:
        """The addresses to deliver to (none: by name, a host the operator listed), or a
        failed result when the operator's policy forbids the target (checked at every
        delivery: a tenant file edited on disk, or a name re-pointed to a private address)."""
        url = str(config.url)
        try:
            self._policy.check_config(url, config.secret is not None)
            return await self._policy.check_target(url)
        except (InvalidRequestError, TargetRefusedError) as exc:
            log.warning("webhook not sent: %s", exc)
            metrics.WEBHOOK_DELIVERIES.labels(outcome="refused").inc()
            return DeliveryResult(
                WebhookStatus.FAILED, 0, "the target is not allowed by the operator's policy"
            )

    async def close(self, grace_s: float = 5.0) -> None:
        """Let deliveries in flight finish (bounded), then close the client; one cut off
        stays pending, for a sweep once its lease runs out."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in list(self._tasks):
            task.cancel()
        await self._client.aclose()
