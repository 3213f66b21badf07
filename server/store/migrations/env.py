"""Alembic's entry point: run the migrations on the connection the caller hands over.

``server.store.schema.upgrade_schema`` (start-up and ``concierge db upgrade``) opens
the connection, takes the upgrade lock and passes the connection in
``config.attributes``; the migrations then run inside that caller's transaction, so
the lock is held until everything, the version stamp included, is committed. There is
no URL here, so no password is ever written to or read from a config file.
"""

from __future__ import annotations

from alembic import context

from server.store.schema import compared_object, declared_metadata


def run_migrations() -> None:
    """Migrate on the handed-over connection; refuse offline (``--sql``) mode."""
    if context.is_offline_mode():
        raise RuntimeError("offline (--sql) migrations are not supported; use `concierge db`")
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "no connection: run migrations through `concierge db upgrade` "
            "or server.store.schema.upgrade_schema()"
        )
    context.configure(
        connection=connection,
        target_metadata=declared_metadata(),
        # SQLite can't ALTER most things; batch mode rebuilds the table instead
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=compared_object,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
