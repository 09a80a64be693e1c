"""The one clock every stored timestamp comes from.

Timezone-aware UTC, because MongoDB stores UTC instants and a naive `datetime.now()` compared with a
value read back would be off by the host's offset. One function, so that every lease expiry, retry time
and record stamp in the database is read from the same clock.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
