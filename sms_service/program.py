"""The program's identity (name, help contact, frequency, terms) as settings define it."""

from __future__ import annotations

from config import Settings
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
