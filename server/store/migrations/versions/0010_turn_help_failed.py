"""A turn remembers whether the customer said our help did not help (``turns.help_failed``).

Revision ID: 0010
Revises: 0009
Created: 2026-12-07

``repeated_failure`` counts the turns of the memory window that said so. The phrases can be
read again from the stored message, but the reason head's reading (``did_not_help``) needs
the message's embedding, so the turn stores the verdict. Turns written before this revision
read ``false`` and are counted by the phrases alone, as before. Runs on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.add_column(
            sa.Column("help_failed", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("help_failed")
