"""Work owed to tenants, written before it is acknowledged (``core/pending_work.py``).

Revision ID: 0005
Revises: 0004
Created: 2026-12-07

Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_work",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "tenant"),
    )


def downgrade() -> None:
    op.drop_table("pending_work")
