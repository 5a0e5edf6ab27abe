"""The text of a run in each language: a broadcast's body and its optional Spanish body.

A subscriber whose language is "es" gets ``body_es`` when the broadcast has one; everyone
else, and every subscriber of a broadcast without one, gets ``body``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sms_service.domain.segments import count_segments


@dataclass(frozen=True)
class RunTexts:
    """A run's text, and its Spanish version for subscribers whose language is "es"."""

    body: str
    body_es: str | None = None

    def for_language(self, language: str | None) -> str:
        """The text a subscriber with ``language`` is sent."""
        return self.body_es if language == "es" and self.body_es else self.body

    @property
    def segments(self) -> int:
        """The most segments either text takes (batches and the throttle plan for it)."""
        texts = (self.body, self.body_es) if self.body_es else (self.body,)
        return max(max(count_segments(text).segments, 1) for text in texts)
