"""A counter row for revisions, so that several organizer processes on one database
allocate gap-free, commit-ordered revisions (the row lock serialises writers);
zip sizes become 64-bit.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    latest = op.get_bind().scalar(sa.text("SELECT COALESCE(MAX(revision), 0) FROM learnwares"))
    op.bulk_insert(counters, [{"name": "revision", "value": int(latest or 0)}])
    with op.batch_alter_table("learnwares") as batch:
        batch.alter_column("zip_size", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)
        batch.alter_column("revision", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("learnwares") as batch:
        batch.alter_column("revision", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)
        batch.alter_column("zip_size", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)
    op.drop_table("counters")
