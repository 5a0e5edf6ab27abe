"""The consent log's hash chain, as pure functions: canonical encoding and links.

Each sealed consent event gets one link::

    hash_n = SHA-256( prev_hash "\\n" n "\\n" canonical(event_n) )      (hex digits)

where ``prev_hash`` is the previous link's hash (:data:`GENESIS`, 64 zeros, for the first),
``n`` the event's position in the chain (1, 2, ...), and ``canonical`` the JSON object of
every field of the event that is not NULL, keys sorted, no spaces, UTF-8. Times are written
in UTC with microseconds (``2026-12-01T21:40:00.123456Z``), dates as ``YYYY-MM-DD``.

Leaving NULL fields out means a column added to the log later (empty on old rows) does not
change the hash of an event sealed before it existed, while any value given to it does.
Anyone holding an export can recompute a link with ``sha256sum``; see the README.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime

GENESIS = "0" * 64


def _value(value: object) -> object:
    if isinstance(value, datetime):
        # A naive time from the database is UTC: that is how the service stores every time.
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool | int | str):
        return value
    return str(value)


def canonical(fields: Mapping[str, object]) -> str:
    """The canonical text of one event's fields (NULLs left out, keys sorted)."""
    present = {k: _value(v) for k, v in fields.items() if v is not None}
    return json.dumps(present, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def link(prev_hash: str, position: int, canonical_text: str) -> str:
    """The hash of the event at ``position`` whose canonical text is ``canonical_text``."""
    data = f"{prev_hash}\n{position}\n{canonical_text}".encode()
    return hashlib.sha256(data).hexdigest()
