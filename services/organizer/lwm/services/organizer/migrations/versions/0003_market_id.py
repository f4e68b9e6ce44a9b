"""Named markets: every learnware belongs to one market; those stored before are in "default".

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("learnwares") as batch:
        batch.add_column(sa.Column("market_id", sa.String(64), nullable=False, server_default="default"))
    op.create_index("ix_learnwares_market_id", "learnwares", ["market_id"])


def downgrade() -> None:
    op.drop_index("ix_learnwares_market_id", "learnwares")
    with op.batch_alter_table("learnwares") as batch:
        batch.drop_column("market_id")
