"""Who is calling: a Firebase ID token, verified by firebase-admin, becomes a `Principal`.

No token is anonymous (may browse, may not upload or vote). A token that is present but bad
(malformed, forged, expired, another project's) is an error, never silently anonymous: a client with
a stale token must learn it has to refresh. With `FIREBASE_AUTH_EMULATOR_HOST` set (dev and tests)
firebase-admin accepts the emulator's unsigned tokens and skips the expiry check, so expiry and
issued-at are checked here as well; production refuses to start with that variable set.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import firebase_admin
from firebase_admin import auth as firebase_auth
from firebase_admin import credentials as firebase_credentials
from google.auth.credentials import AnonymousCredentials

CLOCK_SKEW_SECONDS = 30


@dataclass(frozen=True)
class Principal:
    uid: str | None
    admin: bool = False
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def authenticated(self) -> bool:
        return self.uid is not None


ANONYMOUS = Principal(uid=None)


class AuthError(Exception):
    """The token is present but not acceptable; the message says why, for the client."""


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


class TokenVerifier:
    """Owns a named firebase-admin App, so several apps (tests, workers) can live in one process."""

    def __init__(self, *, project_id: str, credentials_path: str | None, app_name: str) -> None:
        credential = (
            firebase_credentials.Certificate(credentials_path) if credentials_path
            else _VerifyOnlyCredential()
        )
        self._app = firebase_admin.initialize_app(credential, {"projectId": project_id}, name=app_name)

    def close(self) -> None:
        firebase_admin.delete_app(self._app)

    def _verify(self, token: str) -> Principal:
        try:
            claims = firebase_auth.verify_id_token(token, app=self._app, clock_skew_seconds=CLOCK_SKEW_SECONDS)
        except firebase_auth.ExpiredIdTokenError as exc:
            raise AuthError("token expired: refresh the Firebase ID token") from exc
        except firebase_auth.CertificateFetchError as exc:
            raise AuthError("token could not be verified now (certificate fetch failed)") from exc
        except (firebase_auth.InvalidIdTokenError, ValueError) as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        now = time.time()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp < now - CLOCK_SKEW_SECONDS:
            raise AuthError("token expired: refresh the Firebase ID token")
        if isinstance(iat, int | float) and iat > now + CLOCK_SKEW_SECONDS:
            raise AuthError("invalid token: issued in the future")
        return Principal(uid=str(claims["uid"]), admin=claims.get("admin") is True, claims=dict(claims))

    async def verify(self, token: str) -> Principal:
        # verify_id_token may fetch Google's certificates over HTTP: keep it off the event loop.
        return await asyncio.to_thread(self._verify, token)
