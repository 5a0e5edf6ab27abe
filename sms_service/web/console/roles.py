"""Who may open what in the console: one table of area → roles.

Every console view names its area with :func:`~sms_service.web.console.auth.requires`; the
console's guard and the route-matrix test both read this table, so a page cannot forget
its check (a view without an area is refused to everyone).
"""

from __future__ import annotations

from sms_service.models import StaffRole

ADMIN, ORGANISER, COMPLIANCE = StaffRole.ADMIN, StaffRole.ORGANISER, StaffRole.COMPLIANCE
EVERYONE = frozenset(StaffRole)

AREAS: dict[str, frozenset[StaffRole]] = {
    "dashboard": EVERYONE,
    "campaigns.read": EVERYONE,
    "campaigns.write": frozenset({ADMIN, ORGANISER}),
    "broadcasts.read": EVERYONE,
    "broadcasts.write": frozenset({ADMIN, ORGANISER}),
    "subscribers": frozenset({ADMIN, ORGANISER}),
    "compliance": frozenset({ADMIN, COMPLIANCE}),
    "audit": frozenset({ADMIN, COMPLIANCE}),
    "users": frozenset({ADMIN}),
    "ops": frozenset({ADMIN}),
    "profile": EVERYONE,  # one's own account
}

# Roles that see phone numbers in full; everyone else sees them masked (+1********23).
FULL_NUMBERS = frozenset({ADMIN, COMPLIANCE})


def allowed(role: str, area: str) -> bool:
    """True when ``role`` may use ``area`` (unknown areas: nobody)."""
    return role in AREAS.get(area, frozenset())
