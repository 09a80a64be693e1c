"""Celebrity recognition end to end: admin enrolment over multipart, the faces job, re-checks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from tests.servers import LiveServer, graphql
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, skimage_photo, upload_ok, wait_ready

ADMIN = auth_header("root", admin=True)
OWNER = auth_header("olga")
STRANGER = auth_header("sam")
ENROL = "mutation($name: String!, $files: [Upload!]!) { enrollCelebrity(name: $name, files: $files) { name descriptors } }"
CELEB = "query($id: ID!) { photo(id: $id) { celebrity { detected faces people { name confidence } } } }"


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(timeout=120) as http:
        yield http


def enrol(client: httpx.Client, name: str, images: list[bytes], headers: dict[str, str],
          types: list[str] | None = None) -> dict[str, Any]:
    types = types or ["image/jpeg"] * len(images)
    operations = {"query": ENROL, "variables": {"name": name, "files": [None] * len(images)}}
    mapping = {str(i): [f"variables.files.{i}"] for i in range(len(images))}
    files = {str(i): (f"p{i}.jpg", data, types[i]) for i, data in enumerate(images)}
    response = client.post("/graphql", data={"operations": json.dumps(operations), "map": json.dumps(mapping)},
                           files=files, headers={**headers, "Apollo-Require-Preflight": "true"})
    assert response.status_code == 200, response.text
    return response.json()


def astronaut_in_a_scene(seed: int = 77) -> bytes:
    """A different rendition of the enrolled face: cropped, rescaled, recompressed, in a larger scene."""
    face = skimage_photo("astronaut").crop((60, 0, 420, 380)).resize((288, 304), Image.Resampling.LANCZOS)
    scene = generated_photo(seed, size=(1200, 900))
    scene.paste(face, (700, 400))
    return jpeg_bytes(scene, quality=60)


def lfw_person(index: int) -> bytes:
    tile = skdata.lfw_subset()[index]
    face = Image.fromarray((tile * 255).astype(np.uint8)).resize((150, 150), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (250, 250), int(np.median(tile) * 255))
    canvas.paste(face, (50, 50))
    return jpeg_bytes(canvas.convert("RGB"))


def celebrity_of(client: httpx.Client, photo_id: str, headers: dict[str, str], *, timeout: float = 90,
                 until: Any = lambda c: c is not None) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while True:
        celebrity = graphql(client, CELEB, {"id": photo_id}, headers=headers)["data"]["photo"]["celebrity"]
        if until(celebrity) or time.monotonic() > deadline:
            return celebrity
        time.sleep(0.2)


def enrolled(client: httpx.Client) -> list[str]:
    return [c["name"] for c in graphql(client, "{ celebrities { name } }", headers=ADMIN)["data"]["celebrities"]]


@pytest.fixture(autouse=True)
def empty_gallery(client: httpx.Client) -> Iterator[None]:
    """Each test starts with nobody enrolled and leaves nobody enrolled, whatever order they run in."""
    assert enrolled(client) == []
    yield
    for name in enrolled(client):
        removed = graphql(client, "mutation($n: String!) { removeCelebrity(name: $n) }", {"n": name}, headers=ADMIN)
        assert removed["data"]["removeCelebrity"] is True


def test_enrolled_person_is_recognised_and_the_gallery_change_rechecks_old_photos(client: httpx.Client) -> None:
    before = upload_ok(client, astronaut_in_a_scene(), OWNER)["id"]
    wait_ready(client, before, OWNER)
    unchecked = celebrity_of(client, before, OWNER)
    assert unchecked == {"detected": False, "faces": 1, "people": []}  # a face, nobody enrolled yet

    body = enrol(client, "Eileen Collins", [jpeg_bytes(skimage_photo("astronaut"))], ADMIN)
    assert body["data"]["enrollCelebrity"] == {"name": "Eileen Collins", "descriptors": 1}

    rechecked = celebrity_of(client, before, OWNER, until=lambda c: c and c["detected"])
    assert rechecked["people"][0]["name"] == "Eileen Collins"
    assert rechecked["people"][0]["confidence"] > 0.9

    listed = graphql(client, "{ celebrities { name descriptors } }", headers=ADMIN)["data"]["celebrities"]
    assert listed == [{"name": "Eileen Collins", "descriptors": 1}]
    # names are for the owner and admins only
    assert graphql(client, CELEB, {"id": before}, headers=STRANGER)["data"]["photo"]["celebrity"] is None
    assert graphql(client, CELEB, {"id": before}, headers=ADMIN)["data"]["photo"]["celebrity"]["detected"]

    after = upload_ok(client, astronaut_in_a_scene(seed=78), OWNER)["id"]
    assert after != before
    wait_ready(client, after, OWNER)
    fresh = celebrity_of(client, after, OWNER, until=lambda c: c is not None)
    assert fresh["detected"] and fresh["people"][0]["name"] == "Eileen Collins"

    removed = graphql(client, 'mutation { removeCelebrity(name: "Eileen Collins") }', headers=ADMIN)
    assert removed["data"]["removeCelebrity"] is True
    gone = celebrity_of(client, before, OWNER, until=lambda c: c and not c["detected"])
    assert gone == {"detected": False, "faces": 1, "people": []}


@pytest.mark.parametrize(("name", "data"), [("no-people-food", "coffee"), ("no-people-cat", "chelsea")])
def test_photos_without_people_have_no_face(client: httpx.Client, name: str, data: str) -> None:
    photo = upload_ok(client, jpeg_bytes(skimage_photo(data)), OWNER)["id"]
    wait_ready(client, photo, OWNER)
    assert celebrity_of(client, photo, OWNER) == {"detected": False, "faces": 0, "people": []}


def test_a_person_not_enrolled_has_a_face_but_no_celebrity(client: httpx.Client) -> None:
    assert "errors" not in enrol(client, "Eileen Collins", [jpeg_bytes(skimage_photo("astronaut"))], ADMIN)
    photo = upload_ok(client, lfw_person(2), OWNER)["id"]
    wait_ready(client, photo, OWNER)
    assert celebrity_of(client, photo, OWNER) == {"detected": False, "faces": 1, "people": []}


def two_faces() -> bytes:
    face = skimage_photo("astronaut").crop((60, 0, 420, 380))
    canvas = Image.new("RGB", (760, 400), (200, 200, 200))
    canvas.paste(face, (10, 10))
    canvas.paste(face, (390, 10))
    return jpeg_bytes(canvas)


@pytest.mark.parametrize(
    ("files", "types", "reason"),
    [
        ([jpeg_bytes(skimage_photo("coffee"))], None, "NO_FACE"),
        ([two_faces()], None, "SEVERAL_FACES"),
        ([b"definitely not an image"], ["text/plain"], "NOT_AN_IMAGE"),
    ],
    ids=["no-face", "two-faces", "not-an-image"],
)
def test_enrolment_errors_are_clear_and_enrol_nothing(
    client: httpx.Client, server: LiveServer, files: list[bytes], types: list[str] | None, reason: str
) -> None:
    good = jpeg_bytes(skimage_photo("astronaut"))
    body = enrol(client, "Nobody Famous", [good, *files], ADMIN, types=["image/jpeg", *(types or ["image/jpeg"])])
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["problems"] == [{"file": 1, "reason": reason, "message": error["extensions"]["problems"][0]["message"]}]
    names = [c["name"] for c in graphql(client, "{ celebrities { name } }", headers=ADMIN)["data"]["celebrities"]]
    assert "Nobody Famous" not in names  # all or nothing


def test_only_admins_enrol(client: httpx.Client) -> None:
    body = enrol(client, "Eileen Collins", [jpeg_bytes(skimage_photo("astronaut"))], STRANGER)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert graphql(client, "{ celebrities { name } }", headers=STRANGER)["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # anonymous: sign in first (the app shows its sign-in), not "you may not"
    assert graphql(client, "{ celebrities { name } }")["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
