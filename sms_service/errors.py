"""The service's own exceptions, in one place."""

from __future__ import annotations


class SmsServiceError(Exception):
    """Base class for errors the service raises on purpose."""


class ConsentLogIsAppendOnly(SmsServiceError, RuntimeError):
    """Code tried to change or delete a consent event."""


class AuditLogIsAppendOnly(SmsServiceError, RuntimeError):
    """Code tried to change or delete a console audit entry."""


class BadRequest(SmsServiceError, ValueError):
    """Input that cannot be accepted; the message says why."""


class NotFound(SmsServiceError, LookupError):
    """A named record does not exist."""


class SendRetryable(SmsServiceError):
    """A send was refused for now or its outcome was lost: the job retries (and reconciles)."""


class SendInFlight(SendRetryable):
    """Another attempt at this message may still be waiting for Twilio's answer."""


class ThrottleTimeout(SmsServiceError):
    """The wait for a send slot would exceed ``max_wait``; nothing was reserved."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"next send slot is {wait:.3f}s away")
        self.wait = wait
