"""Idempotent uploads: the id a client chose for an upload, unique per owner (NULL = none given).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("learnwares") as batch:
        batch.add_column(sa.Column("client_request_id", sa.String(128), nullable=True))
        batch.create_unique_constraint("uq_learnwares_owner_client_request_id", ["owner", "client_request_id"])


def downgrade() -> None:
    with op.batch_alter_table("learnwares") as batch:
        batch.drop_constraint("uq_learnwares_owner_client_request_id", type_="unique")
        batch.drop_column("client_request_id")
