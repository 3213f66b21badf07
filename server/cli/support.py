"""``concierge tenants|catalog|customers ...``: load a tenant's support data from files.

Like ``concierge kb``, these work on the data directory directly (no server needed)
and validate every record with the same schemas as the HTTP API, reporting the file
and line of the first bad record. Imports are idempotent: a product or customer is
replaced by id, and an event already stored (same customer, kind, time and payload)
is not stored twice, so ``make run`` can load the demo on every start.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from core.errors import InvalidRequestError
from server.config import Environment, Settings

MAX_IMPORT_RECORDS = 1_000_000


def add_support_commands(commands: Any) -> None:
    """Register ``tenants``, ``catalog`` and ``customers`` command groups."""
    tenants = commands.add_parser("tenants", help="tenant configuration (brand voice, policy)")
    tenant_commands = tenants.add_subparsers(title="tenants commands")
    install = tenant_commands.add_parser("install", help="validate and install a tenant file")
    install.add_argument("path", type=Path)
    install.add_argument("--tenant", required=True)
    install.set_defaults(handler=_install_tenant)
    show = tenant_commands.add_parser("show", help="the effective configuration of a tenant")
    show.add_argument("--tenant", required=True)
    show.set_defaults(handler=_show_tenant)

    catalog = commands.add_parser("catalog", help="product catalog")
    catalog_commands = catalog.add_subparsers(title="catalog commands")
    products = catalog_commands.add_parser("import", help="products from JSONL or CSV")
    products.add_argument("path", type=Path)
    products.add_argument("--tenant", required=True)
    products.set_defaults(handler=_import_catalog)

    customers = commands.add_parser("customers", help="customers and their events")
    customer_commands = customers.add_subparsers(title="customers commands")
    people = customer_commands.add_parser(
        "import", help="customers (and optionally events) from JSONL or CSV"
    )
    people.add_argument("path", type=Path, help="customers file")
    people.add_argument("--events", type=Path, help="events file (customer_id, kind, ...)")
    people.add_argument("--tenant", required=True)
    people.set_defaults(handler=_import_customers)


def read_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, record)`` from a ``.jsonl`` or ``.csv`` file.

    In CSV, cells that hold JSON objects or lists (``payload``, ``consent``, ``tags``)
    are decoded; ``tags`` may also be ``;``-separated.
    """
    if not path.is_file():
        raise InvalidRequestError(f"{path}: no such file")
    suffix = path.suffix.lower()
    with open(path, encoding="utf-8", newline="") as handle:
        if suffix in (".jsonl", ".ndjson"):
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidRequestError(f"{path}:{number}: not JSON: {exc.msg}") from exc
                if not isinstance(record, dict):
                    raise InvalidRequestError(f"{path}:{number}: expected a JSON object")
                yield number, record
        elif suffix == ".csv":
            for number, row in enumerate(csv.DictReader(handle), start=2):
                yield number, {k: _csv_cell(k, v) for k, v in row.items() if k and v != ""}
        else:
            raise InvalidRequestError(f"{path}: use .jsonl or .csv")


def _csv_cell(key: str, value: str) -> Any:
    text = value.strip()
    if text[:1] in "{[":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    if key == "tags":
        return [t.strip() for t in text.split(";") if t.strip()]
    if key == "price":
        try:
            return float(text)
        except ValueError:
            return text
    if text.lower() in ("true", "false") and key.startswith("consent"):
        return text.lower() == "true"
    return text


def _validated(model: type[BaseModel], path: Path, number: int, record: dict[str, Any]) -> Any:
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        raise InvalidRequestError(f"{path}:{number}: {where}: {first['msg']}") from exc


def _install_tenant(args: argparse.Namespace, settings: Settings) -> int:
    from server.security.outbound import WebhookPolicy
    from server.tenants import TenantConfigs

    policy = WebhookPolicy.for_deployment(
        settings.environment is Environment.PRODUCTION, settings.webhook_allowed_hosts
    )
    configs = TenantConfigs(settings.effective_tenants_dir, policy)
    try:
        text = args.path.read_text(encoding="utf-8")
        configs.install(args.tenant, text, str(args.path))
    except OSError as exc:
        sys.stderr.write(f"error: {args.path}: {exc.strerror}\n")
        return 2
    sys.stdout.write(f"tenant {args.tenant}: installed {configs.path_for(args.tenant)}\n")
    return 0


def _show_tenant(args: argparse.Namespace, settings: Settings) -> int:
    from server.tenants import TenantConfigs

    config = TenantConfigs(settings.effective_tenants_dir).get(args.tenant)
    sys.stdout.write(json.dumps(config.model_dump(mode="json"), indent=2) + "\n")
    return 0


def _import_catalog(args: argparse.Namespace, settings: Settings) -> int:
    from core.ids import check_tenant
    from retrieval.catalog import ProductCatalog
    from server.lifespan import build_retrieval
    from server.schemas.support import BulkProductIn
    from server.services.catalog import product_from

    check_tenant(args.tenant)
    products = [
        _validated(BulkProductIn, args.path, number, record)
        for number, record in read_records(args.path)
    ]
    retrieval = build_retrieval(settings)
    catalog = ProductCatalog(retrieval.database, retrieval.embedder)
    count = catalog.put(args.tenant, [product_from(p.product_id, p) for p in products])
    sys.stdout.write(f"catalog {args.tenant}: {count} products embedded and stored\n")
    return 0


def _import_customers(args: argparse.Namespace, settings: Settings) -> int:
    from core.ids import CUSTOMER_ID_PATTERN, check_tenant
    from server.lifespan import build_retrieval, build_support_services
    from server.schemas.support import CustomerIn, EventIn
    from server.store.customers import CustomerEvent

    check_tenant(args.tenant)
    people: list[tuple[str, CustomerIn]] = []
    for number, record in read_records(args.path):
        customer_id = str(record.pop("customer_id", ""))
        _check_customer_id(customer_id, CUSTOMER_ID_PATTERN, args.path, number)
        people.append((customer_id, _validated(CustomerIn, args.path, number, record)))
    events: dict[str, list[CustomerEvent]] = {}
    if args.events is not None:
        known = {customer_id for customer_id, _ in people}
        for number, record in read_records(args.events):
            customer_id = str(record.pop("customer_id", ""))
            _check_customer_id(customer_id, CUSTOMER_ID_PATTERN, args.events, number)
            event = _validated(EventIn, args.events, number, record)
            if customer_id not in known:
                raise InvalidRequestError(
                    f"{args.events}:{number}: customer {customer_id!r} is not in {args.path}"
                )
            events.setdefault(customer_id, []).append(
                CustomerEvent(event.kind, event.timestamp(), dict(event.payload))
            )
    retrieval = build_retrieval(settings)
    service = build_support_services(retrieval).customers
    customers = service.customers
    created = stored = skipped = 0
    for customer_id, body in people:
        _, new = customers.upsert(
            args.tenant,
            customer_id,
            name=body.name,
            tier=body.tier,
            locale=body.locale,
            consent=dict(body.consent),
            attributes=dict(body.attributes),
        )
        created += int(new)
        fresh = _new_events(customers, args.tenant, customer_id, events.get(customer_id, []))
        skipped += len(events.get(customer_id, [])) - len(fresh)
        if fresh:
            service.add_events_sync(args.tenant, customer_id, fresh)
            stored += len(fresh)
    sys.stdout.write(
        f"customers {args.tenant}: {len(people)} customers ({created} new), "
        f"{stored} events stored, {skipped} already present\n"
    )
    return 0


def _check_customer_id(customer_id: str, pattern: str, path: Path, number: int) -> None:
    import re

    if not re.match(pattern, customer_id):
        raise InvalidRequestError(f"{path}:{number}: customer_id {customer_id!r} is missing or bad")


def _new_events(store: Any, tenant: str, customer_id: str, events: list[Any]) -> list[Any]:
    """The events not stored yet (same kind, time and payload count as the same event)."""

    def key(event: Any) -> tuple[str, float, str]:
        return (
            str(event.kind),
            round(event.occurred_at, 3),
            json.dumps(event.payload, sort_keys=True),
        )

    present = {key(e) for e in store.events(tenant, customer_id, limit=MAX_IMPORT_RECORDS)}
    fresh = []
    for event in events:
        if key(event) not in present:
            present.add(key(event))
            fresh.append(event)
    return fresh
