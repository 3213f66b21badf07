"""The ``concierge`` command: serve, chat, config, models, kb, tenants, catalog, customers,
db, crypto, keys; one module per command group.

Output meant for a person goes to stdout; diagnostics go through logging to stderr. A
``ConciergeError`` a command raises is one line on stderr, never a traceback: exit code
2 for the caller's mistake (a 4xx kind), 1 for a failure of the operation.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from core.errors import ConciergeError
from server.cli.chat import add_chat_commands
from server.cli.config import add_config_commands
from server.cli.crypto import add_crypto_commands
from server.cli.db import add_db_commands
from server.cli.kb import add_kb_commands
from server.cli.keys import add_keys_commands
from server.cli.models import add_models_commands
from server.cli.serve import add_serve_commands
from server.cli.support import add_support_commands
from server.config import Settings
from server.http.logs import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``concierge`` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    # vLLM logs to stdout by default; keep stdout for what the command prints.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        settings = Settings(**_overrides(args))
    except (ValidationError, ValueError) as exc:  # ValueError: unreadable config file
        sys.stderr.write(f"invalid settings:\n{exc}\n")
        return 2
    configure_logging(settings.log_level, settings.effective_log_format)
    handler: Any = args.handler
    try:
        result: int = handler(args, settings)
    except ConciergeError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 2 if exc.status_code < 500 else 1
    return result


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="concierge", description="Self-hosted inference server for customer support."
    )
    commands = parser.add_subparsers(title="commands")
    for add_commands in (
        add_serve_commands,
        add_chat_commands,
        add_config_commands,
        add_models_commands,
        add_kb_commands,
        add_support_commands,
        add_db_commands,
        add_crypto_commands,
        add_keys_commands,
    ):
        add_commands(commands)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("host", "port", "engine", "model", "remote_urls", "enforce_eager")
    return {key: getattr(args, key) for key in keys if getattr(args, key, None) is not None}


if __name__ == "__main__":
    sys.exit(main())
