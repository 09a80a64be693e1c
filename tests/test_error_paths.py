"""The error paths of the operations that had none: an unknown id, the wrong user, bad input. Each gets its
code, and nothing stored changes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from bson import ObjectId

from tests.servers import LiveServer, graphql
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, upload_ok, wait_ready

ALICE, BOB, ROOT = auth_header("err-alice"), auth_header("err-bob"), auth_header("err-root", admin=True)
REJECT = "mutation($id: ID!, $tags: [String!]!) { rejectTags(photoId: $id, tags: $tags) { id } }"
SIMILAR = "query($id: ID!, $n: Int) { similarPhotos(photoId: $id, first: $n) { similarity photo { id } } }"
SKIP = "mutation($id: ID!) { skipDuel(duelId: $id) }"
VOCABULARY = "mutation($tags: [String!]!) { addVocabularyTags(tags: $tags) }"
MUTE = "mutation($kind: NotificationKind!) { muteNotifications(kind: $kind) }"
UNMUTE = "mutation($kind: NotificationKind!) { unmuteNotifications(kind: $kind) }"
REMOVE = "mutation($name: String!) { removeCelebrity(name: $name) }"


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def photos(client: httpx.Client) -> list[dict[str, Any]]:
    ids = [upload_ok(client, jpeg_bytes(generated_photo(seed)), ALICE)["id"] for seed in (21, 22)]
    return [wait_ready(client, pid, ALICE) for pid in ids]


def codes(body: dict[str, Any]) -> list[str | None]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]


def argument(body: dict[str, Any]) -> str | None:
    return body["errors"][0]["extensions"].get("argument")


def photo_doc(server: LiveServer, photo_id: str) -> dict[str, Any]:
    doc = server.run(server.services.photos.get(ObjectId(photo_id)))
    assert doc is not None
    return doc


def test_similar_photos(client: httpx.Client, photos: list[dict[str, Any]]) -> None:
    for unknown in (str(ObjectId()), "not-an-id", ""):
        body = graphql(client, SIMILAR, {"id": unknown})
        assert codes(body) == ["NOT_FOUND"] and argument(body) == "photoId"
    for first in (0, -1, 1000):
        body = graphql(client, SIMILAR, {"id": photos[0]["id"], "n": first})
        assert codes(body) == ["BAD_USER_INPUT"] and argument(body) == "first"
    assert codes(graphql(client, SIMILAR, {"id": 5})) == ["NOT_FOUND"]  # an Int is coerced to an ID; a list is not
    assert graphql(client, SIMILAR, {"id": [1]})["data"] is None


def test_tag_vocabulary(client: httpx.Client) -> None:
    body = graphql(client, "{ tagVocabulary(first: 3) }")
    assert body["data"] is None and "first" in body["errors"][0]["message"]  # takes no arguments
    assert graphql(client, "{ tagVocabulary }")["data"]["tagVocabulary"]


def test_leaderboard(client: httpx.Client) -> None:
    query = "query($a: String, $n: Int, $p: LeaderboardPeriod) { leaderboard(after: $a, first: $n, period: $p) { nodes { id } } }"
    body = graphql(client, query, {"a": "garbage!!"})
    assert codes(body) == ["BAD_USER_INPUT"] and argument(body) == "after"
    for first in (0, 101):
        body = graphql(client, query, {"n": first})
        assert codes(body) == ["BAD_USER_INPUT"] and argument(body) == "first"
    body = graphql(client, query, {"p": "YEAR"})
    assert body["data"] is None and "YEAR" in body["errors"][0]["message"]
    assert graphql(client, '{ leaderboard(category: "no-such-category") { nodes { id } } }') == {
        "data": {"leaderboard": {"nodes": []}}}


def test_featured(client: httpx.Client) -> None:
    for first in (0, -5, 101):
        body = graphql(client, "query($n: Int) { featured(first: $n) { id } }", {"n": first})
        assert codes(body) == ["BAD_USER_INPUT"] and argument(body) == "first"


def test_devices(client: httpx.Client, server: LiveServer) -> None:
    assert codes(graphql(client, "{ devices { token } }")) == ["UNAUTHENTICATED"]
    register = "mutation { registerDevice(token: \"err-alice-device\", platform: ANDROID) { token } }"
    assert "errors" not in graphql(client, register, headers=ALICE)
    assert graphql(client, "{ devices { token } }", headers=BOB) == {"data": {"devices": []}}  # not another's
    assert graphql(client, "{ devices { token } }", headers=ALICE) == {"data": {"devices": [{"token": "err-alice-device"}]}}


def test_reject_tags(client: httpx.Client, server: LiveServer, photos: list[dict[str, Any]]) -> None:
    photo_id = photos[0]["id"]
    before = photo_doc(server, photo_id)
    cases = [
        ({"id": str(ObjectId()), "tags": ["sky"]}, ALICE, "NOT_FOUND", "photoId"),
        ({"id": "not-an-id", "tags": ["sky"]}, ALICE, "NOT_FOUND", "photoId"),
        ({"id": photo_id, "tags": ["sky"]}, BOB, "FORBIDDEN", None),
        ({"id": photo_id, "tags": ["sky"]}, {}, "UNAUTHENTICATED", None),
        ({"id": photo_id, "tags": []}, ALICE, "BAD_USER_INPUT", "tags"),
        ({"id": photo_id, "tags": ["x" * 200]}, ALICE, "BAD_USER_INPUT", "tags"),
        ({"id": photo_id, "tags": ["   "]}, ALICE, "BAD_USER_INPUT", "tags"),
    ]
    for variables, headers, code, arg in cases:
        body = graphql(client, REJECT, variables, headers=headers)
        assert codes(body) == [code], (variables, body)
        if arg:
            assert argument(body) == arg
    after = photo_doc(server, photo_id)
    assert (after["tags"], after["rejected_tags"]) == (before["tags"], before["rejected_tags"])


def test_add_vocabulary_tags(client: httpx.Client, server: LiveServer) -> None:
    for headers, tags, code in ((ALICE, ["ok"], "FORBIDDEN"), ({}, ["ok"], "UNAUTHENTICATED"),
                                (ROOT, [], "BAD_USER_INPUT"), (ROOT, ["y" * 200], "BAD_USER_INPUT")):
        assert codes(graphql(client, VOCABULARY, {"tags": tags}, headers=headers)) == [code]
    assert server.run(server.services.vocabulary.extra_tags()) == []


def test_skip_duel(client: httpx.Client, server: LiveServer, photos: list[dict[str, Any]]) -> None:
    left, right = (photo_doc(server, p["id"]) for p in photos)
    ticket = server.services.duels.issue("err-bob", left, right)
    count = lambda: server.run(server.services.db.votes.count_documents({}))  # noqa: E731
    before = count()
    forged = ticket.id[:-4] + ("AAAA" if ticket.id[-4:] != "AAAA" else "BBBB")
    for duel_id, headers, code in ((str(ObjectId()), BOB, "NOT_FOUND"), ("not-a-ticket", BOB, "NOT_FOUND"),
                                   (forged, BOB, "NOT_FOUND"), (ticket.id, ALICE, "FORBIDDEN"),
                                   (ticket.id, {}, "UNAUTHENTICATED")):
        assert codes(graphql(client, SKIP, {"id": duel_id}, headers=headers)) == [code], duel_id
    assert count() == before
    assert graphql(client, SKIP, {"id": ticket.id}, headers=BOB) == {"data": {"skipDuel": True}}
    assert count() == before + 1


def test_mute_and_unmute(client: httpx.Client, server: LiveServer) -> None:
    for mutation in (MUTE, UNMUTE):
        assert codes(graphql(client, mutation, {"kind": "FEATURED"})) == ["UNAUTHENTICATED"]
        body = graphql(client, mutation, {"kind": "NO_SUCH_KIND"}, headers=ALICE)
        assert body["data"] is None and "NO_SUCH_KIND" in body["errors"][0]["message"]
    assert graphql(client, UNMUTE, {"kind": "FEATURED"}, headers=BOB) == {"data": {"unmuteNotifications": []}}
    assert graphql(client, MUTE, {"kind": "FEATURED"}, headers=BOB) == {"data": {"muteNotifications": ["FEATURED"]}}
    assert graphql(client, "{ me { mutedNotifications } }", headers=ALICE) == {
        "data": {"me": {"mutedNotifications": []}}}  # one user's mute is not another's


def test_remove_celebrity(client: httpx.Client, server: LiveServer) -> None:
    for name, headers, code in (("Nobody", ROOT, "NOT_FOUND"), ("", ROOT, "NOT_FOUND"), ("x" * 500, ROOT, "NOT_FOUND"),
                                ("Nobody", ALICE, "FORBIDDEN"), ("Nobody", {}, "UNAUTHENTICATED")):
        body = graphql(client, REMOVE, {"name": name}, headers=headers)
        assert codes(body) == [code], (name, body)
    assert server.run(server.services.gallery.names()) == []
