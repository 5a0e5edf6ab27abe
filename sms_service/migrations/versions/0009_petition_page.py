"""the public petition page: web signature fields, pending confirmations, API tokens

``signatures.subscriber_id`` becomes nullable (a web signature without a number has no
subscriber) and gains the web fields; each way of recognising a signer is unique per
campaign. SQLite rebuilds the table (batch mode); PostgreSQL alters it in place.

Revision ID: 0009_petition_page
Revises: 0008_run_figures
Create Date: 2026-12-01 21:46:02.333465
"""

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.exc import SAWarning

revision: str = "0009_petition_page"
down_revision: str | None = "0008_run_figures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


@contextlib.contextmanager
def _signatures_batch() -> Iterator:
    """``batch_alter_table("signatures")``, without the reflection warning it causes.

    SQLite's batch mode reflects signatures and, through its foreign key, subscribers,
    whose expression index (lower(name), 0005_console) SQLAlchemy cannot reflect: it warns
    and skips it. Only signatures is rebuilt, so that index is untouched.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", SAWarning)
        with op.batch_alter_table("signatures", schema=None) as batch_op:
            yield batch_op


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_token_hash"), ["token_hash"], unique=True)

    op.create_table(
        "web_confirmations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("signature_id", sa.Integer(), nullable=True),
        sa.Column("outbound_message_id", sa.Integer(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("disclosure", sa.Text(), nullable=False),
        sa.Column("confirmation_text", sa.Text(), nullable=False),
        sa.Column("ip", sqlmodel.sql.sqltypes.AutoString(length=45), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("resolved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("reply_message_sid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
        ),
        sa.ForeignKeyConstraint(
            ["outbound_message_id"],
            ["outbound_messages.id"],
        ),
        sa.ForeignKeyConstraint(
            ["signature_id"],
            ["signatures.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("web_confirmations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_web_confirmations_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_web_confirmations_phone"), ["phone"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_confirmations_status"), ["status"], unique=False)

    with _signatures_batch() as batch_op:
        batch_op.add_column(
            sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True)
        )
        batch_op.add_column(
            sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("disclosure", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("ip", sqlmodel.sql.sqltypes.AutoString(length=45), nullable=True)
        )
        batch_op.add_column(
            sa.Column("user_agent", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True)
        )
        batch_op.alter_column("subscriber_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_unique_constraint("uq_signatures_campaign_email", ["campaign_id", "email"])
        batch_op.create_unique_constraint(
            "uq_signatures_campaign_fingerprint", ["campaign_id", "fingerprint"]
        )


def downgrade() -> None:
    with _signatures_batch() as batch_op:
        batch_op.drop_constraint("uq_signatures_campaign_fingerprint", type_="unique")
        batch_op.drop_constraint("uq_signatures_campaign_email", type_="unique")
        batch_op.alter_column("subscriber_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("user_agent")
        batch_op.drop_column("ip")
        batch_op.drop_column("disclosure")
        batch_op.drop_column("fingerprint")
        batch_op.drop_column("email")

    with op.batch_alter_table("web_confirmations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_confirmations_status"))
        batch_op.drop_index(batch_op.f("ix_web_confirmations_phone"))
        batch_op.drop_index(batch_op.f("ix_web_confirmations_created_at"))

    op.drop_table("web_confirmations")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_token_hash"))

    op.drop_table("api_tokens")
