"""Durable check jobs: every check of a learnware is a row that checkers lease, heartbeat and complete.

Learnwares left PENDING by the gateway's former in-memory queue get a queued job.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    jobs = op.create_table(
        "check_jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("learnware_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_holder", sa.String(256), nullable=True),
        sa.Column("lease_expires_at", sa.Float, nullable=True),
        sa.Column("heartbeat_at", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_check_jobs_learnware_id", "check_jobs", ["learnware_id"])
    op.create_index("ix_check_jobs_state", "check_jobs", ["state"])
    learnwares = sa.table("learnwares", sa.column("id", sa.String), sa.column("status", sa.String), sa.column("deleted", sa.Boolean), sa.column("seq", sa.Integer))
    pending = op.get_bind().execute(sa.select(learnwares.c.id).where(learnwares.c.status == "PENDING", learnwares.c.deleted.is_(False)).order_by(learnwares.c.seq)).scalars().all()
    if pending:
        now = time.time()
        op.bulk_insert(jobs, [{"learnware_id": learnware_id, "state": "queued", "attempts": 0, "created_at": now, "last_error": ""} for learnware_id in pending])


def downgrade() -> None:
    op.drop_index("ix_check_jobs_state", "check_jobs")
    op.drop_index("ix_check_jobs_learnware_id", "check_jobs")
    op.drop_table("check_jobs")
