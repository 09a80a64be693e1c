"""The rate limits of the settings, as the limiter every API process shares (see accounts/rate_limits.py)."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from accounts.rate_limits import Action, Limit, RateLimiter
from photoduel.settings import Settings
from storage.rate_limits import RateLimitRepository
from storage.token_bucket import Rate

DAY_SECONDS = 86400.0


def _bucket(name: str, spec: str) -> list[Limit]:
    rate = Rate.parse(spec)
    return [Limit(name, rate)] if rate is not None else []


def limits_from(settings: Settings) -> dict[Action, list[Limit]]:
    votes = _bucket("votes", settings.rate_limit_votes)
    if settings.rate_limit_daily_votes:
        votes.insert(0, Limit("votes_daily", Rate(settings.rate_limit_daily_votes, DAY_SECONDS), fixed_window=True))
    open_tickets = ([Limit("open_tickets", Rate(settings.rate_limit_open_tickets, settings.duel_ttl_seconds))]
                    if settings.rate_limit_open_tickets else [])
    return {
        Action.REQUEST: _bucket("requests", settings.rate_limit_ip),
        Action.VOTE: votes,
        Action.DUEL: _bucket("duels", settings.rate_limit_duels),
        Action.OPEN_TICKET: open_tickets,
        Action.SKIP: _bucket("skips", settings.rate_limit_skips),
        Action.UPLOAD: _bucket("uploads", settings.rate_limit_uploads),
        Action.SEARCH: _bucket("searches", settings.rate_limit_searches),
        Action.ENROLMENT: _bucket("enrolments", settings.rate_limit_enrolments),
        Action.TAG_EDIT: _bucket("tag_edits", settings.rate_limit_tag_edits),
        Action.EDIT: _bucket("edits", settings.rate_limit_edits),
    }


def build_rate_limiter(settings: Settings, db: AsyncDatabase[dict[str, Any]]) -> RateLimiter:
    return RateLimiter(RateLimitRepository(db), limits_from(settings))
