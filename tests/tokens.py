"""Firebase Auth emulator-style ID tokens for tests: unsigned JWTs with the real claim layout.

firebase-admin accepts these only while FIREBASE_AUTH_EMULATOR_HOST is set (as the emulator's own
tokens are unsigned); production refuses to start with that variable.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

PROJECT_ID = "demo-photoduel"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def mint_token(
    uid: str,
    *,
    admin: bool = False,
    project_id: str = PROJECT_ID,
    expires_in: int = 3600,
    issued_ago: int = 0,
    issuer: str | None = None,
    **claims: Any,
) -> str:
    now = int(time.time()) - issued_ago
    payload = {
        "iss": issuer or f"https://securetoken.google.com/{project_id}",
        "aud": project_id,
        "auth_time": now,
        "user_id": uid,
        "sub": uid,
        "iat": now,
        "exp": now + expires_in,
        "email": f"{uid}@example.com",
        "firebase": {"identities": {}, "sign_in_provider": "custom"},
        **({"admin": True} if admin else {}),
        **claims,
    }
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."


def auth_header(uid: str, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(uid, **kwargs)}"}
