"""console accounts, the console audit log, and the campaign plain SIGN signs

``staff_users`` and ``audit_log`` for sms_service.models.staff; the audit log gets the same
append-only triggers as the consent log. ``campaigns.sign_default`` marks the campaign a
plain SIGN signs, at most one (a partial unique index, on SQLite and PostgreSQL alike).
``lower(name)`` is indexed for the console's name search.

Revision ID: 0005_console
Revises: 0004_spanish
Create Date: 2026-12-01 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005_console"
down_revision: str | None = "0004_spanish"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("session_token", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_login_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_staff_users_email", "staff_users", ["email"], unique=True)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("target", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("ip", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["staff_users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_occurred_at", "audit_log", ["occurred_at"])
    op.create_index("ix_audit_log_user_id", "audit_log", ["user_id"])
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sign_default", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index(
        "uq_campaigns_one_sign_default",
        "campaigns",
        ["sign_default"],
        unique=True,
        postgresql_where=sa.text("sign_default"),
        sqlite_where=sa.text("sign_default"),
    )
    # The console's subscriber search: a name prefix (LIKE 'ada%') on lower(name).
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_subscribers_lower_name ON subscribers (lower(name) text_pattern_ops)"
        )
    else:
        op.execute("CREATE INDEX ix_subscribers_lower_name ON subscribers (lower(name))")
    _install_append_only_guard()


def _install_append_only_guard() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'audit log is append-only: % refused', TG_OP;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE "
            "ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{action.lower()} BEFORE {action} "
                "ON audit_log BEGIN "
                f"SELECT RAISE(ABORT, 'audit log is append-only: {action} refused'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.execute("DROP INDEX IF EXISTS ix_subscribers_lower_name")
    op.drop_index("uq_campaigns_one_sign_default", table_name="campaigns")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("sign_default")
    op.drop_table("audit_log")
    op.drop_table("staff_users")
