"""All tables. Import from here so SQLModel's metadata (and alembic) sees every one."""

from .broadcasts import (
    AudienceKind,
    Broadcast,
    BroadcastDelivery,
    BroadcastNumber,
    BroadcastRun,
    BroadcastStatus,
    DeliveryStatus,
    RunStatus,
)
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
    "AudienceKind",
    "Broadcast",
    "BroadcastDelivery",
    "BroadcastNumber",
    "BroadcastRun",
    "BroadcastStatus",
    "Campaign",
    "ConsentEvent",
    "DeliveryStatus",
    "InboundMessage",
    "MessageStatusEvent",
    "OutboundMessage",
    "RunStatus",
    "Signature",
    "Subscriber",
    "SubscriberStatus",
    "SubscriberTag",
    "utcnow",
]
