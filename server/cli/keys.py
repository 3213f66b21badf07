"""``concierge keys create|list|revoke``: the API keys of the configured database.

Keys are managed from the command line only, by whoever can reach the database: no
HTTP route can mint a key, so a leaked key of any role cannot create others. The
full key is printed once, at creation; afterwards only its id is ever shown.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from server.config import Settings
from server.store.api_keys import ApiKey, Role


def add_keys_commands(commands: Any) -> None:
    """Register the ``keys`` command group."""
    keys = commands.add_parser("keys", help="API keys (tenant + role) for callers")
    key_commands = keys.add_subparsers(title="keys commands")
    create = key_commands.add_parser("create", help="issue a key; prints it once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--name", default="", help="who or what uses the key")
    create.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        help="requests per minute for this key (default: CONCIERGE_RATE_LIMIT_PER_MINUTE)",
    )
    create.set_defaults(handler=_create)
    listing = key_commands.add_parser("list", help="keys with tenant, role and state")
    listing.add_argument("--tenant", default=None)
    listing.set_defaults(handler=_list)
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=_revoke)


def _store(settings: Settings) -> Any:
    from core.db import create_database_engine
    from server.store.api_keys import ApiKeyStore
    from server.store.schema import upgrade_schema

    engine = create_database_engine(settings.effective_database_url)
    upgrade_schema(engine)
    return ApiKeyStore(engine)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    from core.ids import check_tenant

    check_tenant(args.tenant)
    if args.rate_limit is not None and args.rate_limit < 0:
        sys.stderr.write("error: --rate-limit must be 0 or more\n")
        return 2
    issued = _store(settings).create(args.tenant, Role(args.role), args.name, args.rate_limit)
    sys.stderr.write(
        f"key {issued.key.key_id} for tenant {args.tenant}, role {args.role}; "
        "store it now, it is not shown again:\n"
    )
    sys.stdout.write(issued.token + "\n")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    keys = _store(settings).list(args.tenant)
    sys.stdout.write(f"{'id':<13} {'tenant':<20} {'role':<8} {'state':<8} {'created':<17} name\n")
    for key in keys:
        sys.stdout.write(_row(key))
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    key = _store(settings).revoke(args.key_id)
    if key is None:
        sys.stderr.write(f"error: no key {args.key_id!r}\n")
        return 1
    sys.stdout.write(
        f"revoked {key.key_id} (tenant {key.tenant}, role {key.role.value}); servers refuse it "
        f"within CONCIERGE_API_KEY_CACHE_S ({settings.api_key_cache_s:g} s)\n"
    )
    return 0


def _row(key: ApiKey) -> str:
    created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(key.created_at))
    state = "active" if key.active else "revoked"
    role = key.role.value
    return f"{key.key_id:<13} {key.tenant:<20} {role:<8} {state:<8} {created:<17} {key.name}\n"
