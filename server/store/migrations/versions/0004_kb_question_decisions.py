"""Admin decisions on example questions learned from conversations.

Revision ID: 0004
Revises: 0003
Created: 2026-12-06

Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kb_question_decisions",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("question_id", sa.String(length=16), nullable=False),
        sa.Column("doc_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("decided_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "question_id"),
    )
    op.create_index("ix_kb_question_decisions_doc", "kb_question_decisions", ["tenant", "doc_id"])


def downgrade() -> None:
    op.drop_table("kb_question_decisions")
