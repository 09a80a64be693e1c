"""Turn one PhotoDuel notification into FCM HTTP v1 messages, one per device token.

Kept apart from the sender so that the payload shape (what the iOS, Android and web apps read) can be
checked and changed without any network code, and so the outbox can store a `PushPayload` as plain data.
FCM rejects a whole message with INVALID_ARGUMENT when a data value is not a string, a data key is
reserved, or the APNs collapse id is too long; we refuse those here, at build time, where the stack
trace still points at the caller, instead of turning them into per-token delivery failures later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from firebase_admin import messaging

# FCM refuses these data keys (and any key starting with "google." or "gcm.") for the whole message.
_RESERVED_DATA_KEYS = frozenset({"from", "notification", "message_type"})
_RESERVED_DATA_PREFIXES = ("google.", "gcm.")
# APNs refuses an `apns-collapse-id` longer than 64 bytes.
_APNS_COLLAPSE_ID_MAX_BYTES = 64


@dataclass(frozen=True)
class PushPayload:
    """What the user should see, independent of platform and device.

    `data` is what the app reads to act on a tap (e.g. `{"photoId": ..., "kind": "TAG_SUGGESTIONS",
    "deepLink": "photoduel://photos/<id>"}`); FCM only carries strings there, so other types are refused
    instead of silently str()-ed. `collapse_key` makes a newer notification replace an older undelivered
    (Android, web) or displayed (iOS, Android tag) one with the same key: "N tag suggestions" for a photo
    should replace the previous count, not stack. Android keeps at most 4 distinct collapse keys per
    device, so use a key per kind of notification and photo, not per event. `high_priority` wakes a
    dozing device; keep it for things the user is waiting for, or Android demotes the app's priority.
    """

    title: str
    body: str
    data: Mapping[str, str]
    collapse_key: str | None
    high_priority: bool = False

    def __post_init__(self) -> None:
        for key, value in self.data.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(
                    f"PushPayload.data must map str to str (FCM carries strings only); "
                    f"got {key!r}: {type(value).__name__}"
                )
            if key in _RESERVED_DATA_KEYS or key.startswith(_RESERVED_DATA_PREFIXES):
                raise ValueError(f"PushPayload.data key {key!r} is reserved by FCM")
        if self.collapse_key is not None:
            if not self.collapse_key:
                raise ValueError("PushPayload.collapse_key must be None or a non-empty string")
            if len(self.collapse_key.encode()) > _APNS_COLLAPSE_ID_MAX_BYTES:
                raise ValueError(
                    f"PushPayload.collapse_key is longer than {_APNS_COLLAPSE_ID_MAX_BYTES} bytes "
                    "(APNs apns-collapse-id limit)"
                )
        # A read-only copy: the outbox may keep the payload while the caller reuses its dict.
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))

    @property
    def thread_id(self) -> str | None:
        """iOS groups notifications by `thread-id`; we group by kind ("TAG_SUGGESTIONS", ...)."""
        return self.data.get("kind")


def build_messages(payload: PushPayload, tokens: Sequence[str]) -> list[messaging.Message]:
    """One `messaging.Message` per token, in token order, all with the same content.

    Per platform:
    - Android: `collapse_key`, `priority` high/normal, and the notification `tag` set to the collapse
      key so a newer notification replaces the one already in the shade.
    - APNs: `apns-collapse-id` (same role as the Android collapse key), `apns-priority` 10 (immediate)
      or 5 (power-considerate), `apns-push-type: alert` (required by iOS 13+ for visible pushes), and
      `aps` with `thread-id` (grouping) and the default sound.
    - Web push: only the `Urgency` header; the browser shows the shared notification and data.
    """
    if isinstance(tokens, str):
        raise TypeError("tokens must be a sequence of registration tokens, not one string")
    for token in tokens:
        if not isinstance(token, str) or not token:
            raise ValueError("every registration token must be a non-empty string")

    notification = messaging.Notification(title=payload.title, body=payload.body)
    data = dict(payload.data)
    android = messaging.AndroidConfig(
        collapse_key=payload.collapse_key,
        priority="high" if payload.high_priority else "normal",
        notification=messaging.AndroidNotification(tag=payload.collapse_key),
    )
    apns_headers = {
        "apns-priority": "10" if payload.high_priority else "5",
        "apns-push-type": "alert",
    }
    if payload.collapse_key is not None:
        apns_headers["apns-collapse-id"] = payload.collapse_key
    apns = messaging.APNSConfig(
        headers=apns_headers,
        payload=messaging.APNSPayload(aps=messaging.Aps(thread_id=payload.thread_id, sound="default")),
    )
    webpush = messaging.WebpushConfig(headers={"Urgency": "high" if payload.high_priority else "normal"})

    messages = []
    for token in tokens:
        message = messaging.Message(
            notification=notification, data=data, android=android, apns=apns, webpush=webpush
        )
        # Our apps register FCM registration tokens (FirebaseMessaging.getToken()), which FCM v1 still
        # targets as `message.token`. firebase-admin 7.x deprecates the `token=` argument in favour of
        # `fid=` (Firebase Installation IDs, an opt-in client mode we do not use) and warns on every
        # message; setting the attribute sends the same JSON without a warning per message.
        message.token = token
        messages.append(message)
    return messages
