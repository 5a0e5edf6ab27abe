"""All tables. Import from here so SQLModel's metadata (and alembic) sees every one."""

from sms_service.models.broadcasts import (
    AudienceKind,
    Broadcast,
    BroadcastDelivery,
    BroadcastNumber,
    BroadcastRun,
    BroadcastStatus,
    DeliveryStatus,
    RunFigures,
    RunStatus,
)
from sms_service.models.consent_chain import ConsentSeal
from sms_service.models.core import (
    Campaign,
    ConsentEvent,
    InboundMessage,
    Signature,
    Subscriber,
    SubscriberStatus,
    SubscriberTag,
    utcnow,
)
from sms_service.models.outbound import (
    KINDS_AFTER_OPT_OUT,
    MessageKind,
    MessageStatusEvent,
    OutboundMessage,
)
from sms_service.models.petition import ApiToken, WebConfirmation
from sms_service.models.staff import AuditEntry, DailyCount, StaffRole, StaffUser

__all__ = [
    "ApiToken",
    "AudienceKind",
    "AuditEntry",
    "Broadcast",
    "BroadcastDelivery",
    "BroadcastNumber",
    "BroadcastRun",
    "BroadcastStatus",
    "Campaign",
    "ConsentEvent",
    "ConsentSeal",
    "DailyCount",
    "DeliveryStatus",
    "InboundMessage",
    "KINDS_AFTER_OPT_OUT",
    "MessageKind",
    "MessageStatusEvent",
    "OutboundMessage",
    "RunFigures",
    "RunStatus",
    "Signature",
    "StaffRole",
    "StaffUser",
    "Subscriber",
    "SubscriberStatus",
    "SubscriberTag",
    "WebConfirmation",
    "utcnow",
]
