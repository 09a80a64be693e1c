"""A loopback stand-in for the Firebase Auth emulator's user endpoints, the network edge of `check_revoked`.

With FIREBASE_AUTH_EMULATOR_HOST set, firebase-admin looks a user up with
`POST http://<host>/identitytoolkit.googleapis.com/v1/projects/<project>/accounts:lookup`
(`{"localId": [uid]}`, answered `{"users": [{"localId", "validSince", "disabled", ...}]}`), and revokes
or disables one with `.../accounts:update` (`{"localId", "validSince"}` or `{"localId", "disableUser"}`),
as the real emulator does. Every uid a test mints a token for exists here (the tests' tokens are
minted, not signed up); `delete` makes one unknown.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PATH = re.compile(r"^/identitytoolkit\.googleapis\.com/v1/projects/[^/]+/accounts:(lookup|update)$")


@dataclass
class _User:
    valid_since: int
    disabled: bool = False
    deleted: bool = False


class AuthEmulator:
    def __init__(self) -> None:
        self._users: dict[str, _User] = {}
        self._lock = threading.Lock()
        self.lookups: Counter[str] = Counter()
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                match = _PATH.match(self.path.split("?", 1)[0])
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if match is None:
                    self._answer(404, {"error": {"code": 404, "message": "NOT_FOUND"}})
                elif match.group(1) == "lookup":
                    self._answer(200, emulator._lookup(body))
                else:
                    self._answer(200, emulator._update(body))

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="auth-emulator")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> AuthEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _user(self, uid: str) -> _User:
        with self._lock:
            return self._users.setdefault(uid, _User(valid_since=0))

    def _lookup(self, body: dict[str, Any]) -> dict[str, Any]:
        users = []
        for uid in body.get("localId", []):
            self.lookups[uid] += 1
            user = self._user(uid)
            if not user.deleted:
                users.append({"localId": uid, "email": f"{uid}@example.com", "emailVerified": False,
                              "validSince": str(user.valid_since), "disabled": user.disabled,
                              "createdAt": "0", "providerUserInfo": []})
        return {"kind": "identitytoolkit#GetAccountInfoResponse", **({"users": users} if users else {})}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        uid = str(body["localId"])
        user = self._user(uid)
        if "validSince" in body:
            user.valid_since = int(body["validSince"])
        if "disableUser" in body:
            user.disabled = bool(body["disableUser"])
        return {"kind": "identitytoolkit#SetAccountInfoResponse", "localId": uid}

    def revoke(self, uid: str) -> None:
        """What `auth.revoke_refresh_tokens` does: tokens issued before now are revoked."""
        self._user(uid).valid_since = int(time.time())

    def delete(self, uid: str) -> None:
        self._user(uid).deleted = True
