"""All tables. Import from here so SQLModel's metadata (and alembic) sees every one."""

from .core import (
    Campaign,
    ConsentEvent,
    InboundMessage,
    Signature,
    Subscriber,
    SubscriberStatus,
    SubscriberTag,
    utcnow,
)
from .outbound import MessageStatusEvent, OutboundMessage

__all__ = [
    "Campaign",
    "ConsentEvent",
    "InboundMessage",
    "MessageStatusEvent",
    "OutboundMessage",
    "Signature",
    "Subscriber",
    "SubscriberStatus",
    "SubscriberTag",
    "utcnow",
]
