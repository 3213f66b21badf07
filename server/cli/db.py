"""``concierge db upgrade|current``: the schema of the configured database.

``concierge serve`` (and every command that opens the store) upgrades the schema at
start-up anyway; ``db upgrade`` exists so a deployment can migrate once, before rolling
out new servers, and see which revision it went from and to. The database URL is shown
with its password masked.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from server.config import Settings


def add_db_commands(commands: Any) -> None:
    """Register the ``db`` command group."""
    db = commands.add_parser("db", help="database schema (CONCIERGE_DATABASE_URL)")
    db_commands = db.add_subparsers(title="db commands")
    upgrade = db_commands.add_parser("upgrade", help="apply pending migrations")
    upgrade.set_defaults(handler=_upgrade)
    current = db_commands.add_parser("current", help="the revision the database is at")
    current.set_defaults(handler=_current)


def _upgrade(_: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from core.db import create_database_engine
    from server.store.schema import upgrade_schema

    engine = create_database_engine(settings.effective_database_url)
    try:
        result = upgrade_schema(engine)
    except SQLAlchemyError as exc:
        return _unreachable(engine, exc)
    finally:
        engine.dispose()
    sys.stdout.write(f"database: {_shown(engine)}\n")
    if result.adopted:
        sys.stdout.write("tables created before migrations: stamped at the baseline\n")
    sys.stdout.write(f"revision before: {result.before or 'none'}\n")
    sys.stdout.write(f"revision now: {result.after or 'none'}\n")
    return 0


def _current(_: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from core.db import create_database_engine
    from server.store.schema import current_revision, head_revision

    engine = create_database_engine(settings.effective_database_url)
    try:
        with engine.connect() as connection:
            revision = current_revision(connection)
    except SQLAlchemyError as exc:
        return _unreachable(engine, exc)
    finally:
        engine.dispose()
    head = head_revision()
    state = "up to date" if revision == head else f"behind: run `concierge db upgrade` ({head})"
    sys.stdout.write(f"database: {_shown(engine)}\n")
    sys.stdout.write(f"revision: {revision or 'none'} ({state})\n")
    return 0


def _shown(engine: Any) -> str:
    return str(engine.url.render_as_string(hide_password=True))


def _unreachable(engine: Any, exc: Exception) -> int:
    # the first line names the cause (refused, bad password, unknown database) without the SQL
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    sys.stderr.write(f"error: database {_shown(engine)}: {reason}\n")
    return 1
