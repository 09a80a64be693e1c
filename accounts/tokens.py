"""Who is calling: a Firebase ID token, verified by firebase-admin, becomes a `Principal`.

No token is anonymous (may browse, may not upload or vote). A token that is present but bad
(malformed, forged, expired, another project's) is an error, never silently anonymous: a client with
a stale token must learn it has to refresh. With `FIREBASE_AUTH_EMULATOR_HOST` set (dev and tests)
firebase-admin accepts the emulator's unsigned tokens and skips the expiry check, so expiry and
issued-at are checked here as well; it is honoured only with PHOTODUEL_ENV=dev set explicitly.

Revocation (firebase-admin's `check_revoked` rule: the user is disabled, or the token was issued before
the user's `validSince`) needs the user record, one Auth API round trip. Records are cached per user for
`revocation_cache_seconds`, so a revoked token stops working within that time and an active user costs
one lookup per interval, not one per request. When Google's keys or the Auth API cannot be reached the
answer is `AuthUnavailable` (503, retry later), not an `AuthError`: a client told its token is bad
would refresh it in a loop against an outage.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import firebase_admin
import structlog
from firebase_admin import auth as firebase_auth
from firebase_admin import credentials as firebase_credentials
from firebase_admin import exceptions as firebase_exceptions
from google.auth.credentials import AnonymousCredentials

log = structlog.get_logger(__name__)

CLOCK_SKEW_SECONDS = 30
# The Auth API lookup behind the revocation check: bounded, as a request waits on it.
LOOKUP_TIMEOUT_SECONDS = 10
# Cached user records per process; past this the oldest are dropped (they are looked up again).
MAX_CACHED_USERS = 100_000


@dataclass(frozen=True)
class Principal:
    uid: str | None
    admin: bool = False
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def authenticated(self) -> bool:
        return self.uid is not None

    @property
    def anonymous_account(self) -> bool:
        """A Firebase anonymous sign-in: a uid with no identity behind it, free to make by the thousand
        (its votes weigh less until it has a history, see gaming/vote_weights.py)."""
        firebase = self.claims.get("firebase")
        return isinstance(firebase, dict) and firebase.get("sign_in_provider") == "anonymous"

    @property
    def expires_at(self) -> float | None:
        """The token's `exp` (seconds since the epoch): a websocket opened with it is closed then."""
        exp = self.claims.get("exp")
        return float(exp) if isinstance(exp, int | float) else None


ANONYMOUS = Principal(uid=None)


class AuthError(Exception):
    """The token is present but not acceptable; the message says why, for the client."""


class AuthUnavailable(Exception):
    """The token could not be checked now (Google's keys or the Auth API unreachable): retry later."""


def bearer_token(header_value: str | None) -> str | None:
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization header must be 'Bearer <Firebase ID token>'")
    return token.strip()


class _VerifyOnlyCredential(firebase_credentials.Base):  # type: ignore[misc]  # firebase-admin ships no types
    """Verifying an ID token needs the project id and Google's public certificates, no secret.

    Without a service account, firebase-admin would look for Application Default Credentials (and fail
    at the first request on a machine without them); anonymous credentials say what we need: nothing.
    """

    def get_credential(self) -> AnonymousCredentials:
        return AnonymousCredentials()  # type: ignore[no-untyped-call]  # google-auth leaves __init__ untyped


@dataclass(frozen=True)
class _UserState:
    """What the revocation rule needs from a user record, and when it was read (monotonic seconds)."""

    disabled: bool
    valid_after_ms: int  # tokens issued before this are revoked
    read_at: float


class _UserStates:
    """Per-user records for `ttl` seconds; shared by the verifying threads, hence the lock."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._states: dict[str, _UserState] = {}
        self._lock = threading.Lock()

    def get(self, uid: str) -> _UserState | None:
        with self._lock:
            state = self._states.get(uid)
        if state is None or time.monotonic() - state.read_at >= self.ttl:
            return None
        return state

    def put(self, uid: str, state: _UserState) -> None:
        with self._lock:
            self._states.pop(uid, None)
            self._states[uid] = state
            while len(self._states) > MAX_CACHED_USERS:
                del self._states[next(iter(self._states))]


class TokenVerifier:
    """Owns a named firebase-admin App, so several apps (tests, workers) can live in one process."""

    def __init__(self, *, project_id: str, credentials_path: str | None, app_name: str,
                 check_revoked: bool = True, revocation_cache_seconds: float = 60.0) -> None:
        credential = (
            firebase_credentials.Certificate(credentials_path) if credentials_path
            else _VerifyOnlyCredential()
        )
        self._app = firebase_admin.initialize_app(
            credential, {"projectId": project_id, "httpTimeout": LOOKUP_TIMEOUT_SECONDS}, name=app_name)
        # Looking a user up needs a service account, or the emulator (firebase-admin reads the variable).
        can_look_up = bool(credentials_path) or bool(os.environ.get("FIREBASE_AUTH_EMULATOR_HOST"))
        if check_revoked and not can_look_up:
            log.warning("auth.revocation_unchecked",
                        reason="no service account (PHOTODUEL_FIREBASE_CREDENTIALS): revoked tokens stay valid "
                               "until they expire")
        self._users = _UserStates(revocation_cache_seconds) if check_revoked and can_look_up else None

    def close(self) -> None:
        firebase_admin.delete_app(self._app)

    def _verify(self, token: str) -> Principal:
        try:
            claims = firebase_auth.verify_id_token(token, app=self._app, clock_skew_seconds=CLOCK_SKEW_SECONDS)
        except firebase_auth.ExpiredIdTokenError as exc:
            raise AuthError("token expired: refresh the Firebase ID token") from exc
        except firebase_auth.CertificateFetchError as exc:
            raise AuthUnavailable(f"Google's token keys could not be fetched: {exc}") from exc
        except (firebase_auth.InvalidIdTokenError, ValueError) as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        now = time.time()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp < now - CLOCK_SKEW_SECONDS:
            raise AuthError("token expired: refresh the Firebase ID token")
        if isinstance(iat, int | float) and iat > now + CLOCK_SKEW_SECONDS:
            raise AuthError("invalid token: issued in the future")
        uid = str(claims["uid"])
        if self._users is not None:
            self._check_revoked(uid, iat)
        return Principal(uid=uid, admin=claims.get("admin") is True, claims=dict(claims))

    def _check_revoked(self, uid: str, iat: object) -> None:
        """firebase-admin's `check_revoked` rule, on a user record at most `ttl` seconds old."""
        assert self._users is not None
        state = self._users.get(uid)
        if state is None:
            state = self._look_up(uid)
            self._users.put(uid, state)
        if state.disabled:
            raise AuthError("the user account is disabled")
        if not isinstance(iat, int | float) or iat * 1000 < state.valid_after_ms:
            raise AuthError("token revoked: sign in again")

    def _look_up(self, uid: str) -> _UserState:
        try:
            user = firebase_auth.get_user(uid, app=self._app)
        except firebase_auth.UserNotFoundError as exc:
            raise AuthError("the user account no longer exists") from exc
        except ValueError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        except firebase_exceptions.FirebaseError as exc:
            raise AuthUnavailable(f"the Auth API could not be reached: {type(exc).__name__}: {exc}") from exc
        return _UserState(disabled=bool(user.disabled), valid_after_ms=int(user.tokens_valid_after_timestamp),
                          read_at=time.monotonic())

    async def verify(self, token: str) -> Principal:
        # verify_id_token may fetch Google's certificates over HTTP: keep it off the event loop.
        return await asyncio.to_thread(self._verify, token)
