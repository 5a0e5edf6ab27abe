"""The program's identity (name, help contact, frequency, terms) and its sender's reach, as
settings define them."""

from __future__ import annotations

from config import Settings
from sms_service.domain.reach import Reach, reach_of
from sms_service.domain.replies import Program


def program_from(settings: Settings) -> Program:
    """The program identity used in every reply and consent event, from settings."""
    return Program(
        name=settings.program_name,
        help_contact=settings.program_help_contact,
        frequency=settings.program_frequency,
        terms_url=settings.program_terms_url,
        frequency_es=settings.program_frequency_es,
    )


def reach_from(settings: Settings) -> Reach:
    """Which numbers the program's sender can text (``TWILIO_FROM``, a Messaging Service,
    ``SHORT_CODE_COUNTRIES``)."""
    return reach_of(
        settings.twilio_from,
        messaging_service=bool(settings.twilio_messaging_service_sid),
        short_code_regions=settings.short_code_countries,
    )
