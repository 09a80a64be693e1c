"""Deliver push notifications through Firebase Cloud Messaging (HTTP v1) with firebase-admin.

The sender owns its own named firebase_admin App, so push credentials stay separate from the App that
verifies ID tokens, and tests can run several senders side by side. It never raises for a delivery
problem: every token gets a `DeliveryResult` whose status tells the outbox what to do next (done, retry
later, forget the device, or give up on the message). Exceptions are kept for misuse (bad payload, send
after close) and misconfiguration at start.

firebase-admin's calls block (requests + a thread per message), so async callers use `send_async`,
which runs `send` on a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

import firebase_admin
import requests
import structlog
from firebase_admin import credentials, exceptions, messaging
from google.auth import exceptions as google_auth_exceptions
from google.auth.transport import requests as google_auth_requests

from notifications.devices import token_fingerprint
from notifications.messages import PushPayload, build_messages

log = structlog.get_logger(__name__)

_FCM_ORIGIN = "https://fcm.googleapis.com"
# firebase-admin starts one thread and one connection per message of a `send_each` call; chunks of 100
# match the connection pool firebase-admin mounts for FCM (pool_maxsize=100) and keep a 2-core worker
# from spawning 500 threads at once.
_CHUNK_SIZE = 100
_DETAIL_MAX_CHARS = 500

# FCM error codes (google.firebase.fcm.v1.FcmError.errorCode) and canonical Google codes, by outcome.
_TOKEN_GONE_FCM_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
_TRANSIENT_FCM_CODES = frozenset({"UNAVAILABLE", "INTERNAL", "QUOTA_EXCEEDED"})
_TRANSIENT_CODES = frozenset(
    {exceptions.UNAVAILABLE, exceptions.INTERNAL, exceptions.RESOURCE_EXHAUSTED, exceptions.DEADLINE_EXCEEDED}
)
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"


class DeliveryStatus(str, Enum):
    """What the outbox should do with one (notification, token) pair."""

    SENT = "SENT"  # FCM accepted it; done.
    TRANSIENT = "TRANSIENT"  # FCM or the network is struggling: retry later with backoff.
    INVALID_TOKEN = "INVALID_TOKEN"  # the device is gone or not ours: delete the token, don't retry.
    FATAL = "FATAL"  # the message or our credentials are wrong: retrying will not help.


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome for one token; `message_id` is FCM's `projects/<p>/messages/<id>` name when SENT."""

    token: str
    status: DeliveryStatus
    message_id: str | None
    error_code: str | None
    detail: str | None


class FcmSettings(Protocol):
    """The part of `photoduel.settings.Settings` the sender reads (no import: `photoduel` imports us)."""

    @property
    def firebase_project_id(self) -> str: ...
    @property
    def firebase_credentials(self) -> Path | None: ...
    @property
    def fcm_url(self) -> str | None: ...


class FcmSender:
    """Sends one `PushPayload` to many device tokens and classifies each outcome.

    `fcm_base_url` replaces `https://fcm.googleapis.com` (PHOTODUEL_FCM_URL: a loopback FCM in tests, an
    egress proxy in production). The OAuth token endpoint comes from the service-account JSON's
    `token_uri`, as always with google-auth. Thread-safe: `send` may be called from several threads.
    """

    def __init__(
        self,
        *,
        project_id: str,
        credentials_path: Path,
        fcm_base_url: str | None = None,
        app_name: str = "photoduel-fcm",
        http_timeout_seconds: float = 30.0,
    ) -> None:
        if not project_id:
            raise ValueError("PHOTODUEL_FIREBASE_PROJECT_ID must not be empty when push is enabled")
        base_url = _validated_base_url(fcm_base_url) if fcm_base_url is not None else None
        try:
            credential = credentials.Certificate(str(credentials_path))
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"PHOTODUEL_FIREBASE_CREDENTIALS={credentials_path}: not a readable service-account JSON ({exc})"
            ) from exc
        self.project_id = project_id
        self.base_url = base_url or _FCM_ORIGIN
        self._credential = credential.get_credential()
        self._token_lock = threading.Lock()
        self._token_session = requests.Session()
        self._token_request = functools.partial(
            google_auth_requests.Request(self._token_session), timeout=http_timeout_seconds
        )
        # firebase-admin's default is 120 s per HTTP call; an outbox worker should not hang that long.
        options = {"projectId": project_id, "httpTimeout": http_timeout_seconds}
        self._app: firebase_admin.App | None = firebase_admin.initialize_app(
            credential, options, name=app_name
        )
        try:
            if base_url is not None:
                _point_messaging_at(self._app, base_url)
        except BaseException:
            self.close()
            raise
        log.info("fcm.sender_ready", project_id=project_id, fcm_base_url=self.base_url, app_name=app_name)

    @classmethod
    def from_settings(cls, settings: FcmSettings) -> FcmSender | None:
        """The sender the settings ask for, or None when push is off (no PHOTODUEL_FIREBASE_CREDENTIALS).

        With push off the outbox still records every notification; nothing is sent. Each sender gets an
        App name of its own: firebase-admin refuses a second App with a name in use, and one process may
        open the services more than once (tests, a maintenance command beside the API).
        """
        if settings.firebase_credentials is None:
            log.info("fcm.disabled", reason="PHOTODUEL_FIREBASE_CREDENTIALS is not set")
            return None
        return cls(
            project_id=settings.firebase_project_id,
            credentials_path=settings.firebase_credentials,
            fcm_base_url=settings.fcm_url,
            app_name=f"photoduel-fcm-{uuid.uuid4().hex[:8]}",
        )

    def send(self, payload: PushPayload, tokens: Sequence[str]) -> list[DeliveryResult]:
        """Send `payload` to every distinct token; one result per distinct token, in first-seen order.

        Blocking. Duplicate tokens are sent once (a phone should not buzz twice). Up to 100 messages go
        out concurrently (firebase-admin's `send_each`, one HTTP request per message).
        """
        app = self._app
        if app is None:
            raise RuntimeError("FcmSender.send() after close()")
        unique = list(dict.fromkeys(tokens))
        if not unique:
            return []
        messages = build_messages(payload, unique)
        started = time.perf_counter()
        results: list[DeliveryResult] = []
        try:
            self._ensure_access_token()
        except google_auth_exceptions.GoogleAuthError as exc:
            results = _all_failed(unique, exc)
        else:
            for start in range(0, len(unique), _CHUNK_SIZE):
                chunk = slice(start, start + _CHUNK_SIZE)
                results.extend(_send_chunk(app, unique[chunk], messages[chunk]))
        counts = Counter(result.status.value for result in results)
        log.info(
            "fcm.sent",
            tokens=len(unique),
            sent=counts["SENT"],
            transient=counts["TRANSIENT"],
            invalid_token=counts["INVALID_TOKEN"],
            fatal=counts["FATAL"],
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return results

    def _ensure_access_token(self) -> None:
        """Fetch the OAuth access token once, under a lock, before the messages go out.

        google-auth refreshes lazily inside each request and without a lock, so the first `send_each`
        of N messages (and the first after each hourly expiry) would otherwise POST to the token
        endpoint N times at once. `valid` turns false a few minutes before expiry, so the per-request
        check inside firebase-admin then finds a fresh token and does not refresh again.
        """
        with self._token_lock:
            if not self._credential.valid:
                self._credential.refresh(self._token_request)

    async def send_async(self, payload: PushPayload, tokens: Sequence[str]) -> list[DeliveryResult]:
        """`send` on a worker thread, so the event loop keeps serving while FCM answers."""
        return await asyncio.to_thread(self.send, payload, tokens)

    def close(self) -> None:
        """Delete this sender's firebase_admin App (idempotent).

        firebase-admin closes the messaging service's httpx client with `asyncio.run()`, which raises
        when called from a thread that is running an event loop (e.g. a Starlette lifespan). In that
        case the deletion runs on a helper thread.
        """
        app, self._app = self._app, None
        if app is None:
            return
        self._token_session.close()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            firebase_admin.delete_app(app)
            return
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(firebase_admin.delete_app, app).result()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _point_messaging_at(app: firebase_admin.App, base_url: str) -> None:
    """Make `app`'s messaging service talk to `base_url` instead of https://fcm.googleapis.com.

    firebase-admin has no option for the FCM endpoint (only the Auth emulator has one), so this is the
    one place that reaches into its internals; re-check it on every firebase-admin upgrade (written
    against 7.7.0, messaging.py `_MessagingService.__init__`):
    - `messaging._get_messaging_service(app)` creates (once) and returns the App's service;
    - `_fcm_url` is the per-message URL used by `send`, `send_each` (sync, requests) and
      `send_each_async` (httpx, HTTP/2 when the server negotiates it); there is no batch endpoint
      any more. We swap only the origin, so a path change in a future version carries over;
    - `_fcm_topic_url` (topic subscriptions, unused by us) is redirected too, for consistency;
    - the requests session has a 100-connection adapter mounted on the FCM origin; the same adapter
      instance is mounted on our base, so a redirected `send_each` gets the same pool and retries
      (urllib3: up to 4 retries on 500/503, honouring Retry-After) as production, not the 10-connection
      default.
    If any of these is missing, fail at start rather than silently sending to Google.
    """
    service: Any = messaging._get_messaging_service(app)
    fcm_url = getattr(service, "_fcm_url", None)
    topic_url = getattr(service, "_fcm_topic_url", None)
    session = getattr(getattr(service, "_client", None), "session", None)
    adapters = getattr(session, "adapters", {})
    if (not (isinstance(fcm_url, str) and fcm_url.startswith(_FCM_ORIGIN)) or session is None
            or _FCM_ORIGIN not in adapters):
        raise RuntimeError(
            f"PHOTODUEL_FCM_URL is set but firebase-admin {firebase_admin.__version__} no longer exposes "
            "the FCM URL where notifications/fcm.py expects it; update _point_messaging_at()."
        )
    service._fcm_url = base_url + fcm_url[len(_FCM_ORIGIN) :]
    if isinstance(topic_url, str) and topic_url.startswith(_FCM_ORIGIN):
        service._fcm_topic_url = base_url + topic_url[len(_FCM_ORIGIN) :]
    session.mount(base_url, adapters[_FCM_ORIGIN])


def _validated_base_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(
            f"PHOTODUEL_FCM_URL must be an http(s) base URL like https://host[:port][/prefix], got {url!r}"
        )
    return url.strip().rstrip("/")


def _send_chunk(
    app: firebase_admin.App, tokens: list[str], batch: list[messaging.Message]
) -> list[DeliveryResult]:
    try:
        response = messaging.send_each(batch, app=app)
    except (exceptions.FirebaseError, google_auth_exceptions.GoogleAuthError) as exc:
        return _all_failed(tokens, exc)
    results = []
    for token, item in zip(tokens, response.responses, strict=True):
        if item.success:
            results.append(DeliveryResult(token, DeliveryStatus.SENT, item.message_id, None, None))
            continue
        status, code = classify_error(item.exception)
        _log_failure(status, code, item.exception, token=token_fingerprint(token))
        results.append(DeliveryResult(token, status, None, code, _detail(item.exception)))
    return results


def _all_failed(tokens: list[str], exc: BaseException) -> list[DeliveryResult]:
    """The whole batch failed before FCM answered (token fetch, no network): one shared outcome."""
    status, code = classify_error(exc)
    _log_failure(status, code, exc, tokens=len(tokens))
    return [DeliveryResult(token, status, None, code, _detail(exc)) for token in tokens]


def classify_error(exc: BaseException) -> tuple[DeliveryStatus, str]:
    """Map a firebase-admin / google-auth failure to (status, error code).

    The error code is FCM's own errorCode when FCM sent one (UNREGISTERED, QUOTA_EXCEEDED, ...), else
    the canonical Google code (NOT_FOUND, UNAVAILABLE, ...), else TRANSPORT_ERROR / TOKEN_REFRESH_FAILED
    for failures before FCM was reached.
    """
    # send_each wraps any non-HTTP exception of a worker thread in UnknownError, notably google-auth's
    # TransportError when the OAuth token endpoint is unreachable; look through it.
    if isinstance(exc, exceptions.UnknownError) and isinstance(
        exc.cause, google_auth_exceptions.GoogleAuthError
    ):
        exc = exc.cause
    if isinstance(exc, google_auth_exceptions.TransportError):
        return DeliveryStatus.TRANSIENT, "TRANSPORT_ERROR"
    if isinstance(exc, google_auth_exceptions.RefreshError):
        # Retryable: the token endpoint answered 5xx / rate limits; not retryable: bad key, revoked account.
        status = DeliveryStatus.TRANSIENT if exc.retryable else DeliveryStatus.FATAL
        return status, "TOKEN_REFRESH_FAILED"
    if not isinstance(exc, exceptions.FirebaseError):
        return DeliveryStatus.FATAL, type(exc).__name__

    body = _error_body(exc)
    fcm_code = _fcm_error_code(body)
    code = fcm_code or exc.code
    if fcm_code in _TOKEN_GONE_FCM_CODES or exc.code == exceptions.NOT_FOUND:
        return DeliveryStatus.INVALID_TOKEN, code
    if exc.code == exceptions.INVALID_ARGUMENT and _is_about_token(exc, body):
        return DeliveryStatus.INVALID_TOKEN, code
    http_status = exc.http_response.status_code if exc.http_response is not None else None
    if fcm_code in _TRANSIENT_FCM_CODES or exc.code in _TRANSIENT_CODES or (http_status or 0) >= 500:
        return DeliveryStatus.TRANSIENT, code
    if isinstance(exc, exceptions.UnknownError) and http_status is None:
        # Raised locally, not an answer from FCM (e.g. no thread could be started): nothing says the
        # message is bad, so let the outbox try again later.
        return DeliveryStatus.TRANSIENT, code
    return DeliveryStatus.FATAL, code


def _error_body(exc: exceptions.FirebaseError) -> dict[str, Any]:
    response = exc.http_response
    if response is None:
        return {}
    try:
        parsed = response.json()
    except ValueError:
        return {}
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else {}


def _fcm_error_code(body: dict[str, Any]) -> str | None:
    for detail in body.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == _FCM_ERROR_TYPE:
            code = detail.get("errorCode")
            return code if isinstance(code, str) else None
    return None


def _is_about_token(exc: exceptions.FirebaseError, body: dict[str, Any]) -> bool:
    """INVALID_ARGUMENT is about the token when FCM says so: by message or by the violated field."""
    if "registration token" in str(exc).lower():
        return True
    for detail in body.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == _BAD_REQUEST_TYPE:
            for violation in detail.get("fieldViolations") or []:
                if isinstance(violation, dict) and violation.get("field") == "message.token":
                    return True
    return False


def _detail(exc: BaseException | None) -> str | None:
    return None if exc is None else str(exc)[:_DETAIL_MAX_CHARS]


def _log_failure(status: DeliveryStatus, code: str, exc: BaseException | None, **fields: object) -> None:
    level = log.warning if status is DeliveryStatus.FATAL else log.info
    level("fcm.delivery_failed", status=status.value, error_code=code, error=_detail(exc), **fields)
