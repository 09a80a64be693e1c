"""A loopback stand-in for FCM HTTP v1 and Google's OAuth token endpoint, for tests.

Real HTTP on 127.0.0.1 (stdlib `ThreadingHTTPServer` on a background thread: it starts in
milliseconds and answers the up-to-100 concurrent requests of one `send_each`), so firebase-admin,
google-auth, requests and urllib3 run exactly their production code paths, retries included.

    with LoopbackFcm() as fcm:
        sa = write_service_account(tmp_path / "sa.json", project_id="demo", token_uri=fcm.token_uri)
        fcm.script("token-1", ["UNAVAILABLE", 200])   # first a 503, then success
        ...                                           # point the sender at fcm.base_url
        fcm.fcm_requests()[0].body["message"]

Answers:
- `POST /token`: a JWT-bearer grant -> {"access_token": "loopback-token-<n>", "expires_in": 3600, ...}.
- `POST /v1/projects/{p}/messages:send`: 401 unless `Authorization: Bearer <issued token>`; then the
  next scripted response for the message's token, or 200 {"name": "projects/{p}/messages/<n>"}.
Every request is recorded (method, path, lower-cased headers, parsed body).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import socket
import threading
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

_SEND_PATH = re.compile(r"^/v1/projects/(?P<project>[^/]+)/messages:send$")
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

# FCM errorCode -> (HTTP status, Google canonical status, message), as FCM HTTP v1 answers them.
FCM_ERRORS: dict[str, tuple[int, str, str]] = {
    "INVALID_ARGUMENT": (
        400,
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    ),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Messages'."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
}
_ERROR_BY_STATUS = {status: name for name, (status, _, _) in FCM_ERRORS.items()}


@dataclass(frozen=True)
class ScriptedResponse:
    """A canned answer; `body` None means FCM's error JSON for `error` (or a success for 2xx)."""

    status: int
    error: str | None = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, item: int | str | ScriptedResponse) -> ScriptedResponse:
        """200 -> success; "UNREGISTERED" or 404 -> FCM's error; another int (e.g. 502) -> a bare
        text answer like a proxy in front of FCM would give."""
        if isinstance(item, ScriptedResponse):
            return item
        if isinstance(item, str):
            if item not in FCM_ERRORS:
                raise ValueError(f"unknown FCM error {item!r}; known: {sorted(FCM_ERRORS)}")
            return cls(FCM_ERRORS[item][0], error=item)
        if item in _ERROR_BY_STATUS:
            return cls(item, error=_ERROR_BY_STATUS[item])
        if 200 <= item < 300:
            return cls(item)
        return cls(item, body=f"loopback proxy says {item}".encode(), headers={"Content-Type": "text/plain"})


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, a dict of form fields for /token, or the raw bytes


class LoopbackFcm:
    """The server; a context manager. `close()` also cuts kept-alive connections, so a stopped server
    looks like a closed port to clients, not like a server still answering on pooled sockets."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._scripts: dict[str, deque[ScriptedResponse]] = defaultdict(deque)
        self._issued: list[str] = []
        self._ids = itertools.count(1)
        self._server = _Server((host, 0), _Handler)
        self._server.fcm = self
        port = self._server.server_address[1]
        self.base_url = f"http://{host}:{port}"
        self.token_uri = f"{self.base_url}/token"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="loopback-fcm",
            daemon=True,
        )
        self._thread.start()
        self._closed = False

    # --- test API -----------------------------------------------------------------------------
    def script(self, token: str, responses: Iterable[int | str | ScriptedResponse]) -> None:
        """Queue answers for messages to `token`, used in order; afterwards the token succeeds.
        Note firebase-admin itself retries 500/503 up to 4 times: script 5 to make one `send` fail."""
        with self._lock:
            self._scripts[token].extend(ScriptedResponse.of(item) for item in responses)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def fcm_requests(self, token: str | None = None) -> list[RecordedRequest]:
        """Requests to messages:send, optionally only those for one registration token."""
        return [
            r
            for r in self.requests
            if _SEND_PATH.match(r.path) and (token is None or _message_token(r.body) == token)
        ]

    def token_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/token"]

    @property
    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._issued)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._server.cut_connections()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- called by the handler ----------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _issue_token(self) -> str:
        with self._lock:
            token = f"loopback-token-{len(self._issued) + 1}-{secrets.token_hex(4)}"
            self._issued.append(token)
            return token

    def _is_issued(self, access_token: str) -> bool:
        with self._lock:
            return access_token in self._issued

    def _next_scripted(self, token: str | None) -> ScriptedResponse | None:
        with self._lock:
            queue = self._scripts.get(token or "")
            return queue.popleft() if queue else None

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fcm: LoopbackFcm

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self._open_lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as urllib3's pool expects
    server: _Server
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean; assertions use the recorded requests

    def do_POST(self) -> None:
        fcm = self.server.fcm
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0]
        headers = {name.lower(): value for name, value in self.headers.items()}
        if path == "/token":
            form = {key: values[0] for key, values in parse_qs(raw.decode()).items()}
            fcm._record(RecordedRequest("POST", path, headers, form))
            self._token(form)
            return
        match = _SEND_PATH.match(path)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        fcm._record(RecordedRequest("POST", path, headers, body))
        if match is None:
            self._reply(404, b"not found", {"Content-Type": "text/plain"})
            return
        self._send(match["project"], headers, body)

    def _token(self, form: dict[str, str]) -> None:
        if form.get("grant_type") != _JWT_BEARER or "assertion" not in form:
            self._json(
                400, {"error": "unsupported_grant_type", "error_description": "expected a JWT bearer grant"}
            )
            return
        access_token = self.server.fcm._issue_token()
        self._json(200, {"access_token": access_token, "expires_in": 3600, "token_type": "Bearer"})

    def _send(self, project: str, headers: dict[str, str], body: Any) -> None:
        fcm = self.server.fcm
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        if not fcm._is_issued(bearer):
            self._json(
                401, _google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
            )
            return
        if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
            self._json(400, _google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
            return
        scripted = fcm._next_scripted(_message_token(body))
        if scripted is not None and not 200 <= scripted.status < 300:
            if scripted.body is not None:
                self._reply(scripted.status, scripted.body, scripted.headers)
            else:
                status, google_status, message = FCM_ERRORS[scripted.error or ""]
                self._json(
                    scripted.status,
                    _google_error(status, google_status, message, scripted.error),
                    scripted.headers,
                )
            return
        suffix = "fake_message_id" if body.get("validate_only") else f"0:{fcm._next_id()}%loopback"
        self._json(200, {"name": f"projects/{project}/messages/{suffix}"})

    def _json(self, status: int, payload: object, headers: Mapping[str, str] | None = None) -> None:
        self._reply(
            status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}
        )

    def _reply(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _google_error(
    status: int, google_status: str, message: str, fcm_code: str | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message, "status": google_status}
    if fcm_code is not None:
        error["details"] = [{"@type": _FCM_ERROR_TYPE, "errorCode": fcm_code}]
    return {"error": error}


def _message_token(body: Any) -> str | None:
    message = body.get("message") if isinstance(body, dict) else None
    return message.get("token") if isinstance(message, dict) else None


def jwt_claims(assertion: str) -> dict[str, Any]:
    """The claims of a JWT (unverified): what google-auth asked the token endpoint for."""
    payload = assertion.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def write_service_account(path: Path, *, project_id: str, token_uri: str) -> Path:
    """Write a service-account JSON with a fresh RSA key, shaped like the ones the Firebase console
    downloads, whose `token_uri` points at the loopback server. google-auth signs real JWTs with it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    client_email = f"firebase-adminsdk-test@{project_id}.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": client_email,
        "client_id": str(secrets.randbelow(10**21)).zfill(21),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{client_email.replace('@', '%40')}",
        "universe_domain": "googleapis.com",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2))
    path.chmod(0o600)
    return path


def push_settings(fcm: LoopbackFcm, tmp_path_factory: Any, *, project_id: str = "demo-photoduel") -> dict[str, Any]:
    """The settings overrides that turn push on against this loopback FCM: a fresh service account
    whose `token_uri` is the loopback's, and its send URL. `tmp_path_factory` is pytest's."""
    account = write_service_account(tmp_path_factory.mktemp("firebase") / "sa.json", project_id=project_id,
                                    token_uri=fcm.token_uri)
    return {"firebase_credentials": account, "fcm_url": fcm.base_url}
