"""Reports, the admin queue and decisions, and blocks, over real HTTP with players playing beside them.

Reports: distinct registered reporters hide a READY photo pending review, exactly once however many race
over the line (anonymous accounts' reports are kept, not counted); an admin's decision brings it back or
keeps it out, is recorded with who and when, and the owner is told. Blocks: a blocked owner's photos are
in none of the blocker's duels or lists while players play and the owner uploads, and come back on
unblock. Each mutation with its owner, another user and an admin; unknown ids NOT_FOUND.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from bson import ObjectId

from photoduel.settings import Settings
from tests.servers import LiveServer, error_code, graphql
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, upload_many

ADMIN_UID = "moderator"
ADMIN = auth_header(ADMIN_UID, admin=True)
OWNERS = ("ann", "ben", "cat", "dan")
REPORTS_TO_HIDE = 3
UNKNOWN = str(ObjectId())

REPORT = ("mutation($id: ID!, $reason: ReportReason!, $text: String) "
          "{ reportPhoto(id: $id, reason: $reason, text: $text) }")
MODERATE = ("mutation($id: ID!, $d: ModerationDecision!, $note: String) { moderatePhoto(id: $id, decision: $d, "
            "note: $note) { id status moderation { state source reasons note decidedBy "
            "decisions { decision decidedBy decidedAt note previousStatus } } } }")
QUEUE = ("{ moderationQueue(first: 100) { edges { node { photo { id } moderation { state source reasons } "
         "reports reportReasons { reason reports } reportNotes } } } }")
PHOTO = "query($id: ID!) { photo(id: $id) { id status moderation { state source reasons decidedBy decisions { decision } } } }"
NOTIFICATIONS = "{ notifications(first: 100) { edges { node { kind title body photoId } } } }"
BLOCK = "mutation($id: ID!) { blockUser(id: $id) }"
UNBLOCK = "mutation($id: ID!) { unblockUser(id: $id) }"
BLOCKED = "{ me { blockedUsers { id } } }"
NEXT = "{ nextDuel { id left { id } right { id } } }"
VOTE = "mutation($id: ID!, $c: DuelChoice!) { voteDuel(duelId: $id, choice: $c) { accepted } }"
SKIP = "mutation($id: ID!) { skipDuel(duelId: $id) }"
LISTS = ("query($id: ID!) { photos(first: 100) { edges { node { id } } } "
         'searchPhotos(text: "a photo", first: 100) { id } similarPhotos(photoId: $id, first: 100) { photo { id } } '
         "featured(first: 100, onePerGroup: false) { id } "
         "leaderboard(first: 100) { edges { node { id } } } }")
CLIENT_LIMITS = httpx.Limits(keepalive_expiry=2.0)


def anonymous_header(uid: str) -> dict[str, str]:
    """A Firebase anonymous account: free to make by the thousand, so its reports are not counted."""
    return auth_header(uid, firebase={"identities": {}, "sign_in_provider": "anonymous"})


@pytest.fixture(scope="module")
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    settings = make_settings(moderation_reports_to_hide=REPORTS_TO_HIDE, featured_min_votes=1, featured_max_sigma=8.0,
                             near_duplicate_cosine=0.999, worker_batch_size=8)
    with LiveServer(settings) as live:
        yield live


@pytest.fixture(scope="module")
def photos(client: httpx.Client) -> dict[str, list[str]]:
    """Three READY photos per owner: owner -> photo ids."""
    count = 3 * len(OWNERS)
    uploaded = upload_many(client, [generated_photo(700 + i) for i in range(count)], OWNERS,
                           titles=[f"{OWNERS[i % len(OWNERS)]} {i}" for i in range(count)])
    return {owner: [pid for pid, by in uploaded.items() if by == owner] for owner in OWNERS}


def notifications(client: httpx.Client, uid: str) -> list[dict[str, Any]]:
    body = graphql(client, NOTIFICATIONS, headers=auth_header(uid))
    return [e["node"] for e in body["data"]["notifications"]["edges"]]


def status(client: httpx.Client, photo_id: str) -> str:
    return graphql(client, PHOTO, {"id": photo_id}, headers=ADMIN)["data"]["photo"]["status"]


def report(client: httpx.Client, photo_id: str, headers: dict[str, str], reason: str = "SPAM",
           text: str | None = None) -> dict[str, Any]:
    return graphql(client, REPORT, {"id": photo_id, "reason": reason, "text": text}, headers=headers)


# --- concurrent play beside the moderation requests ---------------------------------------------------


@dataclass
class Play:
    """What the players saw: per player, the photo ids of every duel drawn; and anything that went wrong."""

    seen: dict[str, list[set[str]]] = field(default_factory=dict)
    votes: int = 0
    problems: list[str] = field(default_factory=list)


async def _post(http: httpx.AsyncClient, play: Play, query: str, variables: dict[str, Any],
                headers: dict[str, str]) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    if response.status_code != 200:
        play.problems.append(f"HTTP {response.status_code}: {response.text[:200]}")
        return {}
    return response.json()


async def _player(base_url: str, name: str, stop: asyncio.Event, play: Play, seed: int) -> None:
    """Draw a duel, vote on it (or skip it now and then), until told to stop."""
    rng = random.Random(seed)
    headers = auth_header(name)
    seen = play.seen.setdefault(name, [])
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=CLIENT_LIMITS) as http:
        while not stop.is_set():
            body = await _post(http, play, NEXT, {}, headers)
            duel = body.get("data", {}).get("nextDuel")
            if duel is None:
                if "errors" in body and error_code(body) != "UNAVAILABLE":
                    play.problems.append(f"{name} nextDuel: {body}")
                await asyncio.sleep(0.2)
                continue
            seen.append({duel["left"]["id"], duel["right"]["id"]})
            if rng.random() < 0.15:
                answer = await _post(http, play, SKIP, {"id": duel["id"]}, headers)
            else:
                answer = await _post(http, play, VOTE, {"id": duel["id"], "c": rng.choice(["LEFT", "RIGHT"])},
                                     headers)
                play.votes += 1
            # a photo hidden between the draw and the vote: the vote is refused, nothing else is
            if "errors" in answer and error_code(answer) != "NOT_FOUND":
                play.problems.append(f"{name} vote: {answer}")


async def _uploads(base_url: str, owner: str, seeds: range) -> list[str]:
    """New photos of one owner, ingested while the others play."""
    ids = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=CLIENT_LIMITS) as http:
        for seed in seeds:
            operations = ('{"query": "mutation($f: Upload!) { uploadPhoto(file: $f) { id } }", '
                          '"variables": {"f": null}}')
            response = await http.post(
                "/graphql", data={"operations": operations, "map": '{"0": ["variables.f"]}'},
                files={"0": ("photo.jpg", jpeg_bytes(generated_photo(seed)), "image/jpeg")},
                headers={**auth_header(owner), "Apollo-Require-Preflight": "true"})
            assert response.status_code == 200 and "errors" not in response.json(), response.text
            ids.append(response.json()["data"]["uploadPhoto"]["id"])
            await asyncio.sleep(0.5)
    return ids


async def _while_playing(server: LiveServer, players: list[str], work: Any, play: Play, *,
                         min_seconds: float = 3.0) -> Any:
    """Run `work` (a coroutine) while `players` play, for at least `min_seconds`; its result."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_player(server.url, name, stop, play, n)) for n, name in enumerate(players)]
    started = time.monotonic()
    try:
        result = await work
        await asyncio.sleep(max(0.0, min_seconds - (time.monotonic() - started)))
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    return result


# --- reports -------------------------------------------------------------------------------------------


def test_report_photo_refuses_what_it_must(client: httpx.Client, photos: dict[str, list[str]]) -> None:
    target = photos["dan"][0]
    assert error_code(report(client, target, {})) == "UNAUTHENTICATED"
    assert error_code(report(client, target, auth_header("dan"))) == "FORBIDDEN"  # the owner: not their own
    for unknown in (UNKNOWN, "not-an-id"):
        assert error_code(report(client, unknown, auth_header("eve"))) == "NOT_FOUND"
    long = report(client, target, auth_header("eve"), text="x" * 501)
    assert error_code(long) == "BAD_USER_INPUT" and long["errors"][0]["extensions"]["argument"] == "text"
    # another player and an admin may report it; a repeat is recorded once
    assert report(client, target, auth_header("eve"), "COPYRIGHT", "my photo")["data"]["reportPhoto"] is True
    assert report(client, target, auth_header("eve"), "COPYRIGHT")["data"]["reportPhoto"] is False
    assert report(client, target, ADMIN, "OTHER")["data"]["reportPhoto"] is True
    assert status(client, target) == "READY"  # two distinct reporters of three


def test_distinct_reports_hide_a_photo_once_while_players_play(
    client: httpx.Client, server: LiveServer, photos: dict[str, list[str]],
) -> None:
    target = photos["ann"][0]
    # anonymous accounts' reports are kept but do not count; one player's repeat counts once
    for n in range(REPORTS_TO_HIDE + 1):
        assert report(client, target, anonymous_header(f"anon-{n}"), "NUDITY")["data"]["reportPhoto"] is True
    assert report(client, target, auth_header("rep-0"), "NUDITY", "not for kids")["data"]["reportPhoto"] is True
    assert report(client, target, auth_header("rep-0"), "NUDITY")["data"]["reportPhoto"] is False
    assert status(client, target) == "READY"

    play = Play()
    reporters = [f"rep-{n}" for n in range(1, 9)]

    async def reports() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            async def one(uid: str) -> dict[str, Any]:
                response = await http.post("/graphql", json={"query": REPORT, "variables": {
                    # one dissenting reason: whichever reports race over the line first, NUDITY leads
                    "id": target, "reason": "VIOLENCE" if uid == "rep-1" else "NUDITY"}},
                    headers=auth_header(uid))
                return dict(response.json())

            return list(await asyncio.gather(*(one(uid) for uid in reporters)))

    answers = asyncio.run(_while_playing(server, ["p-1", "p-2", "p-3"], reports(), play))
    assert not play.problems, play.problems[:5]
    assert play.votes > 0, "the players played meanwhile"
    # each report was recorded, or came after the photo was hidden (then it is not the reporter's to see)
    recorded = [a for a in answers if (a.get("data") or {}).get("reportPhoto") is True]
    assert len(recorded) + sum(error_code(a) == "NOT_FOUND" for a in answers) == len(reporters), answers
    assert len(recorded) >= REPORTS_TO_HIDE - 1

    assert status(client, target) == "HIDDEN"
    held = [n for n in notifications(client, "ann") if n["photoId"] == target and n["kind"] == "MODERATION"]
    assert len(held) == 1, held  # however many reports raced over the line
    assert "reported" in held[0]["body"] and "nudity" in held[0]["body"]
    mine = graphql(client, PHOTO, {"id": target}, headers=auth_header("ann"))["data"]["photo"]["moderation"]
    assert mine["state"] == "PENDING" and mine["source"] == "REPORTS" and mine["decidedBy"] is None

    cases = {e["node"]["photo"]["id"]: e["node"]
             for e in graphql(client, QUEUE, headers=ADMIN)["data"]["moderationQueue"]["edges"]}
    case = cases[target]
    assert case["reports"] == 1 + len(recorded)  # rep-0 and the racers, not the anonymous accounts
    assert sum(r["reports"] for r in case["reportReasons"]) == case["reports"]
    assert case["reportReasons"][0]["reason"] == "NUDITY" and case["moderation"]["reasons"][0] == "NUDITY"
    assert "not for kids" in case["reportNotes"]

    # gone from every public read at once; a player's draws never show it again
    stranger = auth_header("p-9")
    assert graphql(client, PHOTO, {"id": target}, headers=stranger)["data"]["photo"] is None
    lists = graphql(client, LISTS, {"id": photos["ben"][0]}, headers=stranger)["data"]
    assert target not in _ids(lists)
    for _ in range(15):
        duel = graphql(client, NEXT, headers=stranger)["data"]["nextDuel"]
        if duel is not None:
            assert target not in (duel["left"]["id"], duel["right"]["id"])
            graphql(client, SKIP, {"id": duel["id"]}, headers=stranger)


def _ids(lists: dict[str, Any]) -> set[str]:
    """Every photo id in a LISTS answer."""
    return ({e["node"]["id"] for e in lists["photos"]["edges"]} | {p["id"] for p in lists["searchPhotos"]}
            | {s["photo"]["id"] for s in lists["similarPhotos"]} | {p["id"] for p in lists["featured"]}
            | {e["node"]["id"] for e in lists["leaderboard"]["edges"]})


def test_decisions_by_admins_only_recorded_with_who_and_when(
    client: httpx.Client, server: LiveServer, photos: dict[str, list[str]],
) -> None:
    target = photos["ann"][0]
    assert status(client, target) == "HIDDEN"  # the previous test's reports hid it
    for headers, expected in ((auth_header("ann"), "FORBIDDEN"), (auth_header("ben"), "FORBIDDEN"),
                              ({}, "UNAUTHENTICATED")):
        assert error_code(graphql(client, MODERATE, {"id": target, "d": "APPROVE"}, headers=headers)) == expected
        assert error_code(graphql(client, QUEUE, headers=headers)) == expected
    assert error_code(graphql(client, MODERATE, {"id": UNKNOWN, "d": "APPROVE"}, headers=ADMIN)) == "NOT_FOUND"
    assert status(client, target) == "HIDDEN"

    before = time.time()
    approved = graphql(client, MODERATE, {"id": target, "d": "APPROVE", "note": "Fine art."},
                       headers=ADMIN)["data"]["moderatePhoto"]
    assert approved["status"] == "READY" and approved["moderation"]["state"] == "APPROVED"
    assert approved["moderation"]["decidedBy"] == ADMIN_UID
    [decision] = approved["moderation"]["decisions"]
    assert decision["decision"] == "APPROVE" and decision["decidedBy"] == ADMIN_UID
    assert decision["note"] == "Fine art." and decision["previousStatus"] == "HIDDEN"
    decided_at = server.run(server.services.moderation.history(ObjectId(target)))[0]["at"]
    assert before - 1 <= decided_at.timestamp() <= time.time() + 1
    # the same decision again (a retried request) records nothing more
    again = graphql(client, MODERATE, {"id": target, "d": "APPROVE"}, headers=ADMIN)["data"]["moderatePhoto"]
    assert len(again["moderation"]["decisions"]) == 1
    # the owner sees the outcome, not who decided nor the history; and is told
    owner_view = graphql(client, PHOTO, {"id": target}, headers=auth_header("ann"))["data"]["photo"]["moderation"]
    assert owner_view["state"] == "APPROVED" and owner_view["decidedBy"] is None and owner_view["decisions"] == []
    assert "Photo visible again" in [n["title"] for n in notifications(client, "ann") if n["photoId"] == target]
    # public again; the reports that hid it never count again, nor may their reporters report it twice
    assert graphql(client, PHOTO, {"id": target}, headers=auth_header("p-9"))["data"]["photo"]["id"] == target
    assert report(client, target, auth_header("rep-0"))["data"]["reportPhoto"] is False
    for n in range(REPORTS_TO_HIDE - 1):
        assert report(client, target, auth_header(f"late-{n}"))["data"]["reportPhoto"] is True
    assert status(client, target) == "READY"
    assert target not in {e["node"]["photo"]["id"]
                          for e in graphql(client, QUEUE, headers=ADMIN)["data"]["moderationQueue"]["edges"]}

    # an admin takes a READY photo down: hidden for good, out of the queue, the owner told with the note
    takedown = photos["ben"][1]
    rejected = graphql(client, MODERATE, {"id": takedown, "d": "REJECT", "note": "Stolen."},
                       headers=ADMIN)["data"]["moderatePhoto"]
    assert rejected["status"] == "HIDDEN" and rejected["moderation"]["state"] == "REJECTED"
    assert rejected["moderation"]["source"] == "ADMIN" and rejected["moderation"]["decisions"][0]["decision"] == "REJECT"
    removed = [n for n in notifications(client, "ben") if n["photoId"] == takedown and n["kind"] == "MODERATION"]
    assert [n["title"] for n in removed] == ["Photo removed"] and "Stolen." in removed[0]["body"]
    assert graphql(client, PHOTO, {"id": takedown}, headers=auth_header("p-9"))["data"]["photo"] is None
    assert takedown not in {e["node"]["photo"]["id"]
                            for e in graphql(client, QUEUE, headers=ADMIN)["data"]["moderationQueue"]["edges"]}


# --- blocks --------------------------------------------------------------------------------------------


def test_block_user_refuses_what_it_must(client: httpx.Client, photos: dict[str, list[str]]) -> None:
    erin = auth_header("erin-2")
    assert error_code(graphql(client, BLOCK, {"id": "ann"})) == "UNAUTHENTICATED"
    assert error_code(graphql(client, BLOCK, {"id": "erin-2"}, headers=erin)) == "BAD_USER_INPUT"
    assert error_code(graphql(client, BLOCK, {"id": "never-signed-in"}, headers=erin)) == "NOT_FOUND"
    assert error_code(graphql(client, UNBLOCK, {"id": "never-signed-in"}, headers=erin)) == "NOT_FOUND"
    assert graphql(client, UNBLOCK, {"id": "ann"}, headers=erin)["data"]["unblockUser"] is False
    assert graphql(client, BLOCK, {"id": "ann"}, headers=erin)["data"]["blockUser"] is True
    assert graphql(client, BLOCK, {"id": "ann"}, headers=erin)["data"]["blockUser"] is False
    assert graphql(client, BLOCK, {"id": "ben"}, headers=erin)["data"]["blockUser"] is True
    assert [u["id"] for u in graphql(client, BLOCKED, headers=erin)["data"]["me"]["blockedUsers"]] == ["ann", "ben"]
    # the list is the blocker's own: the blocked user is not told
    assert graphql(client, BLOCKED, headers=auth_header("ann"))["data"]["me"]["blockedUsers"] == []
    assert graphql(client, UNBLOCK, {"id": "ann"}, headers=erin)["data"]["unblockUser"] is True
    assert [u["id"] for u in graphql(client, BLOCKED, headers=erin)["data"]["me"]["blockedUsers"]] == ["ben"]


def test_a_blocked_owner_is_in_none_of_the_blockers_duels_or_lists_under_concurrent_play(
    client: httpx.Client, server: LiveServer, photos: dict[str, list[str]],
) -> None:
    blocker, blocked = "erin", "cat"
    players = [blocker, "p-1", "p-2", "p-3", "p-4"]
    graphql(client, "{ me { id } }", headers=auth_header(blocker))  # signed in once: a known user
    assert graphql(client, BLOCK, {"id": blocked}, headers=auth_header(blocker))["data"]["blockUser"] is True

    async def uploads_ready() -> list[str]:
        ids = await _uploads(server.url, blocked, range(760, 763))
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            deadline = time.monotonic() + 120
            while True:
                states = [(await http.post("/graphql", json={"query": PHOTO, "variables": {"id": i}},
                                           headers=ADMIN)).json()["data"]["photo"]["status"] for i in ids]
                if "PROCESSING" not in states:
                    break
                assert time.monotonic() < deadline, f"the blocked owner's uploads still processing: {states}"
                await asyncio.sleep(0.3)
        return ids

    play = Play()
    new = asyncio.run(_while_playing(server, players, uploads_ready(), play, min_seconds=6.0))
    assert not play.problems, play.problems[:5]
    theirs = set(photos[blocked]) | set(new)
    drawn = play.seen[blocker]
    assert len(drawn) >= 5, "the blocker played"
    assert not [pair for pair in drawn if pair & theirs], "a blocked owner's photo in the blocker's duel"
    others = [pair for name in players[1:] for pair in play.seen[name]]
    assert any(pair & theirs for pair in others), "the others did meet the blocked owner's photos"

    # the lists: none of theirs for the blocker, theirs for everyone else
    neighbour = photos["dan"][1]
    for_blocker = _ids(graphql(client, LISTS, {"id": neighbour}, headers=auth_header(blocker))["data"])
    for_other = _ids(graphql(client, LISTS, {"id": neighbour}, headers=auth_header("p-1"))["data"])
    assert not for_blocker & theirs
    assert for_other & theirs
    assert for_blocker == for_other - theirs
    # a photo opened by id is not a list: a shared link still opens
    assert graphql(client, PHOTO, {"id": photos[blocked][0]}, headers=auth_header(blocker))["data"]["photo"]

    # unblocked: back in the lists at once, and in the duels
    assert graphql(client, UNBLOCK, {"id": blocked}, headers=auth_header(blocker))["data"]["unblockUser"] is True
    assert _ids(graphql(client, LISTS, {"id": neighbour}, headers=auth_header(blocker))["data"]) & theirs
    met = False
    for _ in range(40):
        duel = graphql(client, NEXT, headers=auth_header(blocker))["data"]["nextDuel"]
        if duel is None:
            break
        graphql(client, SKIP, {"id": duel["id"]}, headers=auth_header(blocker))
        if {duel["left"]["id"], duel["right"]["id"]} & theirs:
            met = True
            break
    assert met, "after unblocking, the owner's photos are drawn again"


def test_the_api_offers_exactly_the_reasons_the_service_takes() -> None:
    """`ReportReason` is the schema's copy of the service's list (each value with its description)."""
    from api.schema.moderation import ReportReason
    from photos.moderation import REPORT_REASONS

    assert [r.value for r in ReportReason] == list(REPORT_REASONS)
