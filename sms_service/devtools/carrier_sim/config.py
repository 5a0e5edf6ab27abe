"""The simulator's settings: one frozen dataclass, checked when built."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from config import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN, Settings


class CallbackMode(StrEnum):
    """Which status callbacks are posted: every change, only the final one, or none."""

    ALL = "all"
    FINAL = "final"
    NONE = "none"


@dataclass(frozen=True)
class SimConfig:
    """How the simulated carrier behaves.

    Times are in milliseconds; rates are fractions between 0 and 1. ``port`` 0 picks a
    free port. ``jitter_ms`` adds a uniform random 0..jitter to every simulated delay.
    ``max_messages`` bounds memory: the oldest accepted messages are forgotten first.
    ``advanced_opt_out``: the service sends through a Messaging Service with Twilio's
    Advanced Opt-Out, so inbound STOP/START/HELP carry ``OptOutType`` (Twilio answered them);
    off, inbound texts are posted plain, as from a short code, and the service must answer.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    undelivered_rate: float = 0.0
    max_concurrency: int = 100
    webhook_url: str | None = None
    account_sid: str = DEV_ACCOUNT_SID
    auth_token: str = DEV_AUTH_TOKEN
    callbacks: CallbackMode = CallbackMode.ALL
    short_code: str = "21333"
    seed: int | None = None
    max_messages: int = 250_000
    price_per_segment: Decimal = Decimal("0.0079")
    callback_concurrency: int = 50
    callback_timeout_s: float = 10.0
    advanced_opt_out: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "callbacks", CallbackMode(self.callbacks))
        object.__setattr__(self, "price_per_segment", Decimal(str(self.price_per_segment)))
        for name in ("error_rate", "undelivered_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        for name in ("latency_ms", "jitter_ms", "callback_timeout_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("max_concurrency", "max_messages", "callback_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be between 0 and 65535")
        if not self.account_sid or not self.auth_token:
            raise ValueError("account_sid and auth_token are required")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SimConfig:
        """Credentials, short code and webhook (``PUBLIC_BASE_URL/sms/inbound``, the URL
        the service checks signatures against) from the service's settings; Advanced Opt-Out
        when the service sends through a Messaging Service; the rest, and anything to
        change, from ``overrides``.

        Refuses production settings: the simulator holds the real auth token and would sign
        texts from any number.
        """
        if settings.is_production:
            raise ValueError(
                "the carrier simulator is a development tool: it does not run with "
                "APP_ENV=production"
            )
        public = settings.public_base_url
        base = cls(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            short_code=settings.twilio_from,
            webhook_url=public.rstrip("/") + "/sms/inbound" if public else None,
            advanced_opt_out=bool(settings.twilio_messaging_service_sid),
        )
        return replace(base, **overrides)

    @property
    def latency_s(self) -> float:
        """The base simulated delay in seconds."""
        return self.latency_ms / 1000.0

    @property
    def jitter_s(self) -> float:
        """The largest extra random delay in seconds."""
        return self.jitter_ms / 1000.0
