"""GraphQL conventions over real HTTP: `node(id:)`/`nodes(ids:)` round-trip every Node type, the paged
connections list what their deprecated plain-list fields list, page by page without repeats, and refuse
cursors that are not theirs; many clients read them at once while photos are still being ingested."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from photoduel.settings import Settings
from tests.servers import LiveServer, error_code, graphql
from tests.tokens import auth_header
from tests.uploads import generated_photo, near_copy, skimage_photo, upload_all, upload_ok, wait_all
from tests.votes import settled

OWNERS = ["nia", "noe", "nat", "ned"]
PLAYER = auth_header("node-player")
ADMIN = auth_header("node-admin", admin=True)

NODE = """query($id: ID!) { node(id: $id) { __typename id
  ... on Photo { title } ... on PhotoGroup { size } ... on PublicProfile { photoCount }
  ... on Notification { kind } } }"""
NEXT = "query { nextDuel { id left { id } right { id } } }"
VOTE = "mutation($id: ID!) { voteDuel(duelId: $id, choice: LEFT) { accepted } }"


@pytest.fixture(scope="module")
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    with LiveServer(make_settings(featured_min_votes=1, featured_max_sigma=8.0, worker_batch_size=8)) as live:
        yield live


def data(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]
    return result


@pytest.fixture(scope="module")
def photos(client: httpx.Client, server: LiveServer) -> dict[str, Any]:
    """Ten photos of four owners (one a near copy, so a group has two members), voted on until some settle."""
    sources = [skimage_photo(n) for n in ("astronaut", "coffee", "chelsea")] + [generated_photo(s) for s in range(6)]
    owners = upload_all(client, sources, OWNERS, titles=[f"n{i}" for i in range(len(sources))])
    original = next(iter(owners))
    copy = upload_ok(client, near_copy(sources[0]), auth_header("noe"), title="copy")["id"]
    owners[copy] = "noe"
    ready = wait_all(client, owners)
    for _ in range(12):
        duel = data(graphql(client, NEXT, headers=PLAYER))["nextDuel"]
        if duel is None:
            break
        assert data(graphql(client, VOTE, {"id": duel["id"]}, headers=PLAYER))["voteDuel"]["accepted"]
    server.run(settled(server))
    return {"owners": owners, "ready": ready, "copy": copy, "original": original}


def node(client: httpx.Client, node_id: str, headers: dict[str, str] | None = None) -> dict[str, Any] | None:
    found: dict[str, Any] | None = data(graphql(client, NODE, {"id": node_id}, headers=headers))["node"]
    return found


def test_node_round_trips_every_node_type(client: httpx.Client, photos: dict[str, Any]) -> None:
    photo_id, owner = photos["original"], photos["owners"][photos["original"]]
    photo = node(client, photo_id)
    assert photo == {"__typename": "Photo", "id": photo_id, "title": "n0"}

    group = data(graphql(client, "query($id: ID!) { photo(id: $id) { group { id size } } }",
                         {"id": photo_id}))["photo"]["group"]
    assert group is not None and group["size"] >= 2, "the near copy joined the original's group"
    assert node(client, group["id"]) == {"__typename": "PhotoGroup", **group}

    profile = node(client, owner)
    assert profile is not None and profile["__typename"] == "PublicProfile" and profile["id"] == owner
    assert profile["photoCount"] == sum(1 for o in photos["owners"].values() if o == owner)

    mine = data(graphql(client, "{ notifications(first: 1) { nodes { id kind } } }",
                        headers=auth_header(owner)))["notifications"]["nodes"]
    assert mine, "the owner was told about tag suggestions"
    assert node(client, mine[0]["id"], auth_header(owner)) == {"__typename": "Notification", **mine[0]}
    assert node(client, mine[0]["id"], PLAYER) is None, "another user's notification reads as unknown"
    assert node(client, mine[0]["id"]) is None, "and so it does for nobody signed in"

    for unknown in ("0" * 24, "nobody-by-this-uid", "", "x" * 500):
        assert node(client, unknown) is None

    ids = [photo_id, "0" * 24, group["id"], owner]
    listed = data(graphql(client, "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }", {"ids": ids}))["nodes"]
    assert [n and n["__typename"] for n in listed] == ["Photo", None, "PhotoGroup", "PublicProfile"]
    assert [n["id"] for n in listed if n] == [photo_id, group["id"], owner]
    too_many = graphql(client, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [photo_id] * 101})
    assert error_code(too_many) == "BAD_USER_INPUT"


def pages(client: httpx.Client, field: str, selection: str, *, first: int, declare: str = "", args: str = "",
          variables: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> list[Any]:
    """Every node of a connection, read `first` at a time through its cursors."""
    query = (f"query($first: Int!, $after: String{declare}) {{ {field}({args}first: $first, after: $after) "
             f"{{ edges {{ cursor node {{ {selection} }} }} pageInfo {{ hasNextPage endCursor }} }} }}")
    seen: list[Any] = []
    after: str | None = None
    for _ in range(50):
        page = data(graphql(client, query, {"first": first, "after": after, **(variables or {})}, headers=headers))[field]
        seen += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        assert page["edges"], "a page that says more follow is not empty"
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]
    raise AssertionError(f"{field} never reached its last page")


def test_connections_page_through_what_the_plain_lists_list(client: httpx.Client, photos: dict[str, Any]) -> None:
    photo_id = photos["original"]
    searched = pages(client, "searchPhotosConnection", "id", first=3, declare=", $text: String!", args="text: $text, ",
                     variables={"text": "a photo"})
    plain = data(graphql(client, '{ searchPhotos(text: "a photo", first: 100) { id } }'))["searchPhotos"]
    assert searched == plain and len(searched) == len(photos["ready"])

    similar = pages(client, "similarPhotosConnection", "similarity photo { id }", first=2, declare=", $pid: ID!",
                    args="photoId: $pid, ", variables={"pid": photo_id})
    plain_similar = data(graphql(client, "query($p: ID!) { similarPhotos(photoId: $p, first: 100) { similarity photo { id } } }",
                                 {"p": photo_id}))["similarPhotos"]
    assert similar == plain_similar and similar, "the kept neighbours, most similar first"
    assert [s["similarity"] for s in similar] == sorted((s["similarity"] for s in similar), reverse=True)

    for one_per_group in (True, False):
        featured = pages(client, "featuredConnection", "id", first=2, declare=", $one: Boolean!",
                         args="onePerGroup: $one, ", variables={"one": one_per_group})
        plain_featured = data(graphql(client, "query($one: Boolean!) { featured(first: 100, onePerGroup: $one) { id } }",
                                      {"one": one_per_group}))["featured"]
        assert featured == plain_featured and featured, "the votes settled some photos"
        assert len({f["id"] for f in featured}) == len(featured), "no photo on two pages"


def test_devices_and_celebrities_page_too(client: httpx.Client) -> None:
    me = auth_header("node-devices")
    tokens = [f"device-token-{i:03d}-" + "x" * 40 for i in range(5)]
    for token in tokens:
        data(graphql(client, "mutation($t: String!) { registerDevice(token: $t, platform: ANDROID) { token } }",
                     {"t": token}, headers=me))
    listed = pages(client, "devicesConnection", "token", first=2, headers=me)
    plain = data(graphql(client, "{ devices { token } }", headers=me))["devices"]
    assert listed == plain and {d["token"] for d in listed} == set(tokens)

    celebrities = pages(client, "celebritiesConnection", "name", first=5, headers=ADMIN)
    assert celebrities == sorted(celebrities, key=lambda c: c["name"])
    assert error_code(graphql(client, "{ celebritiesConnection { edges { cursor } } }", headers=PLAYER)) == "FORBIDDEN"


def test_a_cursor_from_elsewhere_is_the_clients_error(client: httpx.Client, photos: dict[str, Any]) -> None:
    keyset = data(graphql(client, "{ photos(first: 1) { pageInfo { endCursor } } }"))["photos"]["pageInfo"]["endCursor"]
    for after in ("not-a-cursor", keyset, "cmFuazo5OTk5"):  # the last: "rank:9999", past the deepest page
        response = graphql(client, 'query($a: String) { searchPhotosConnection(text: "x", after: $a) { edges { cursor } } }',
                           {"a": after})
        assert error_code(response) == "BAD_USER_INPUT"


def test_the_plain_lists_still_answer_and_say_they_are_deprecated(client: httpx.Client) -> None:
    fields = data(graphql(client, '{ __type(name: "Query") { fields(includeDeprecated: true) '
                                  "{ name isDeprecated deprecationReason } } }"))["__type"]["fields"]
    by_name = {f["name"]: f for f in fields}
    for old, new in [("searchPhotos", "searchPhotosConnection"), ("similarPhotos", "similarPhotosConnection"),
                     ("featured", "featuredConnection"), ("devices", "devicesConnection"),
                     ("celebrities", "celebritiesConnection")]:
        assert by_name[old]["isDeprecated"] and new in by_name[old]["deprecationReason"]
        assert not by_name[new]["isDeprecated"]


def test_many_clients_read_nodes_and_pages_while_photos_are_ingested(client: httpx.Client, server: LiveServer,
                                                                     photos: dict[str, Any]) -> None:
    ids = list(photos["ready"])
    fresh = upload_all(client, [generated_photo(900 + i) for i in range(4)], OWNERS)

    def reader(i: int) -> None:
        with server.client() as own:
            for round_ in range(4):
                batch = ids[(i + round_) % len(ids):] + ids[:(i + round_) % len(ids)]
                listed = data(graphql(own, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": batch}))["nodes"]
                assert [n["id"] for n in listed] == batch
                page = data(graphql(own, "{ featuredConnection(first: 3) { edges { node { id } } } }"))
                assert len(page["featuredConnection"]["edges"]) <= 3

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(reader, range(8)))
    for pid in wait_all(client, fresh):
        assert node(client, pid) is not None
