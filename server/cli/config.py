"""``concierge config show``: the effective settings, secrets masked."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from server.config import Settings


def add_config_commands(commands: Any) -> None:
    config = commands.add_parser("config", help="inspect settings")
    config_commands = config.add_subparsers(title="config commands")
    show = config_commands.add_parser("show", help="print effective settings, secrets masked")
    show.set_defaults(handler=_config_show)


def _config_show(_: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(json.dumps(settings.masked(), indent=2, default=str) + "\n")
    return 0
