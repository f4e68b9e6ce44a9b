"""The learnwares table (as created by the walking skeleton).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "learnwares",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("semantic_spec", sa.Text(), nullable=False),
        sa.Column("stat_specs", sa.Text(), nullable=False),
        sa.Column("check_report", sa.Text(), nullable=False),
        sa.Column("zip_key", sa.String(256), nullable=False),
        sa.Column("zip_size", sa.Integer(), nullable=False),
        sa.Column("zip_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_learnwares_id", "learnwares", ["id"], unique=True)
    op.create_index("ix_learnwares_owner", "learnwares", ["owner"])
    op.create_index("ix_learnwares_status", "learnwares", ["status"])
    op.create_index("ix_learnwares_revision", "learnwares", ["revision"])
    op.create_index("ix_learnwares_deleted", "learnwares", ["deleted"])


def downgrade() -> None:
    op.drop_table("learnwares")
