"""Calendar feed tokens and invitation threads

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "feed_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name=op.f("fk_feed_token_user_id_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_feed_token_token_hash")),
    )
    with op.batch_alter_table("feed_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feed_token_user_id"), ["user_id"], unique=False)

    op.create_table(
        "invitation_thread",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nqsw_id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=80), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"], ["course.id"], name=op.f("fk_invitation_thread_course_id_course")
        ),
        sa.ForeignKeyConstraint(
            ["nqsw_id"], ["nqsw.id"], name=op.f("fk_invitation_thread_nqsw_id_nqsw")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitation_thread")),
        sa.UniqueConstraint(
            "nqsw_id", "course_id", name=op.f("uq_invitation_thread_nqsw_id_course_id")
        ),
        sa.UniqueConstraint("uid", name=op.f("uq_invitation_thread_uid")),
    )


def downgrade():
    op.drop_table("invitation_thread")
    with op.batch_alter_table("feed_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feed_token_user_id"))
    op.drop_table("feed_token")
