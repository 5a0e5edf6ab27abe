"""The seals of the consent log: one link of the hash chain per consent event.

A seal is written by the sealer (:mod:`sms_service.services.consent_chain`), never by the
code that records consent, so recording an event takes no chain-wide lock. Seals are
append-only like the events they cover (ORM guard and database triggers).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import event
from sqlmodel import Field, SQLModel

from sms_service.errors import ConsentLogIsAppendOnly
from sms_service.models.core import utcnow


class ConsentSeal(SQLModel, table=True):
    """The chain link of one consent event: its position, the previous hash and its own.

    ``event_id`` is deliberately not a foreign key: a deleted event must leave its seal
    behind, so that ``consent verify`` can name it.
    """

    __tablename__ = "consent_seals"

    position: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    event_id: int = Field(unique=True, index=True)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    sealed_at: datetime = Field(default_factory=utcnow)


@event.listens_for(ConsentSeal, "before_update")
def _refuse_update(mapper, connection, target) -> None:
    raise ConsentLogIsAppendOnly("consent seals are never updated")


@event.listens_for(ConsentSeal, "before_delete")
def _refuse_delete(mapper, connection, target) -> None:
    raise ConsentLogIsAppendOnly("consent seals are never deleted")
