"""The reference web client at /app, served by the service and played in headless Chromium.

One scenario, as a player goes through it: open /app, sign in by name (the Auth emulator convention),
upload a photo by dropping it, watch its tag suggestions arrive over the `tagSuggestionsReady`
subscription, accept one and reject another, see an upload error (through the camera picker) said in
words, play three duels with the keyboard and see the votes counted, then look at "My photos", the
featured photos and the leaderboard for two categories and periods. Against the real service (embedded
database, tiny CLIP, in-process worker) while other players vote over HTTP and another photo is ingested
beside it; what the page shows is checked against what the service stored. Screenshots go to
tests/artifacts/web_client/ (or $PHOTODUEL_TEST_ARTIFACTS).
"""

from __future__ import annotations

import base64
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType

import httpx
import pytest

from api.web_client import APP_CSP
from photoduel.settings import Settings
from storage.votes import VoteRepository
from tests.browser import artifacts_dir, system_chromium
from tests.servers import LiveServer, graphql
from tests.tokens import auth_header
from tests.uploads import (
    fetch_photo,
    generated_photo,
    jpeg_bytes,
    skimage_photo,
    upload_all,
    upload_ok,
    wait_all,
    wait_ready,
)
from tests.votes import settled, vote_id

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError as exc:  # a failure with the fix, not a collection error nobody can read
    PLAYWRIGHT_MISSING: str | None = f"{exc}: install the dev extra (pip install -e '.[dev]')"
else:
    PLAYWRIGHT_MISSING = None

PLAYER_NAME = "Web Tester"
PLAYER_UID = "dev-web-tester"  # what the page's emulator sign-in makes of the name (api/web/js/auth.js)
SEED_OWNERS = ("ann", "ben")
RIVALS = ("cam", "dee", "eve")  # players voting over HTTP while the page is played
RIVAL_NEXT = "query { nextDuel { id } }"
RIVAL_VOTE = "mutation($id: ID!, $c: DuelChoice!) { voteDuel(duelId: $id, choice: $c) { accepted } }"
MOBILE = {"width": 390, "height": 844}
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    # one vote puts a photo on the leaderboard, so the scenario's three votes show there
    with LiveServer(make_settings(featured_min_votes=1, featured_max_sigma=8.0)) as live:
        yield live


@pytest.fixture(scope="module")
def others_photos(client: httpx.Client) -> list[str]:
    """Photos of two other players, READY: what the player's duels are made of."""
    return list(wait_all(client, upload_all(client, [generated_photo(seed) for seed in range(8)], SEED_OWNERS)))


class Rivals:
    """Other players voting over HTTP the whole time the page is played, and one more photo uploaded and
    ingested meanwhile: the page's requests meet the service's other work, as in production. Every
    request must answer without an error; `errors` keeps any, for the test to show."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self.uploaded: list[str] = []
        self.accepted: dict[str, int] = dict.fromkeys(RIVALS, 0)  # votes counted, per rival (one writer each)
        self.threads = [threading.Thread(target=self._play, args=(uid,), daemon=True) for uid in RIVALS]
        self.threads.append(threading.Thread(target=self._upload, daemon=True))

    def _play(self, uid: str) -> None:
        choose = random.Random(uid)
        with self.server.client(timeout=30) as http:
            while not self.stopping.is_set():
                body = graphql(http, RIVAL_NEXT, headers=auth_header(uid))
                duel = (body.get("data") or {}).get("nextDuel")
                if "errors" in body or duel is None:  # none left for this player: wait for new photos
                    self.errors += [str(e) for e in body.get("errors", [])]
                    self.stopping.wait(0.3)
                    continue
                choice = choose.choice(["LEFT", "RIGHT", "DRAW"])
                voted = graphql(http, RIVAL_VOTE, {"id": duel["id"], "c": choice}, headers=auth_header(uid))
                if "errors" in voted:
                    self.errors += [str(e) for e in voted["errors"]]
                elif voted["data"]["voteDuel"]["accepted"]:
                    self.accepted[uid] += 1
                self.stopping.wait(0.1)

    def _upload(self) -> None:
        with self.server.client(timeout=30) as http:
            try:
                photo = upload_ok(http, jpeg_bytes(generated_photo(97)), auth_header(SEED_OWNERS[0]))
                self.uploaded.append(photo["id"])
                wait_ready(http, photo["id"], auth_header(SEED_OWNERS[0]))
            except AssertionError as exc:
                self.errors.append(f"background upload: {exc}")

    def __enter__(self) -> Rivals:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in self.threads), "a rival's request did not answer"

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if PLAYWRIGHT_MISSING:
        pytest.fail(f"Playwright for Python is missing ({PLAYWRIGHT_MISSING})", pytrace=False)
    executable = system_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


def test_the_app_is_served_with_its_own_policy_and_the_api_keeps_its_own(client: httpx.Client) -> None:
    redirect = client.get("/app")
    assert redirect.status_code == 308 and redirect.headers["location"] == "/app/"
    page = client.get("/app/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="js/main.js">' in page.text
    script = client.get("/app/js/main.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    for response in (page, script, client.get("/app/style.css")):
        assert response.headers["content-security-policy"] == APP_CSP
        assert response.headers["x-frame-options"] == "DENY" and response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-cache"
    assert "'unsafe-inline'" not in APP_CSP and "frame-ancestors 'none'" in APP_CSP
    api = client.post("/graphql", json={"query": "{ categories }"})
    assert api.headers["content-security-policy"].startswith("default-src 'none'")
    assert api.json()["data"]["categories"][:2] == ["landscape", "portrait"]
    assert client.get("/app/config.json").json() == {"authEmulator": True, "projectId": "demo-photoduel"}
    assert client.get("/app/nothing-here.js").status_code == 404


def _drop(page: Page, data: bytes, name: str, mime: str) -> None:
    """What dropping a file from the desktop onto the drop zone does: a drop event carrying the file."""
    page.evaluate("""([b64, name, mime]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type: mime }));
        const zone = document.querySelector("#drop");
        for (const type of ["dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }
    }""", [base64.b64encode(data).decode(), name, mime])


def _images_loaded(page: Page, within: str) -> None:
    page.wait_for_function("(within) => [...document.querySelectorAll(`${within} img`)]"
                           ".every((i) => i.complete && i.naturalWidth > 0)", arg=within)


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(artifacts_dir("web_client") / f"{name}.png"), full_page=True)


def _sign_in(page: Page, url: str) -> None:
    page.goto(f"{url}/app")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#signin-emulator")).to_be_visible()
    _shot(page, "01-sign-in")
    page.fill("#signin-name", PLAYER_NAME)
    page.click("#signin-emulator button[type=submit]")
    expect(page.locator("#tabs")).to_be_visible()
    expect(page.locator("#who")).to_have_text(PLAYER_NAME)


def _upload_and_review(page: Page, client: httpx.Client) -> tuple[str, str]:
    """Drop a photo; its suggestions arrive live; accept the first. Returns the photo id and the tag."""
    page.click("#tabs a[data-view=upload]")
    page.fill("#upload-title", "Astronaut")
    _drop(page, jpeg_bytes(skimage_photo("astronaut")), "astronaut.jpg", "image/jpeg")
    card = page.locator(".card.upload").first
    expect(card).to_have_attribute("data-status", "READY", timeout=120_000)  # pushed over the websocket
    photo_id = card.get_attribute("data-photo-id")
    assert photo_id
    suggestions = card.locator(".chip.suggestion")
    assert suggestions.count() > 0
    expect(card.locator(".category")).to_contain_text("% sure")
    query = "query($id: ID!) { photo(id: $id) { category categoryConfidence } }"
    stored = graphql(client, query, {"id": photo_id}, headers=auth_header(PLAYER_UID))["data"]["photo"]
    assert 0 < stored["categoryConfidence"] <= 1
    shown = f"Category: {stored['category']} · {int(stored['categoryConfidence'] * 100 + 0.5)}% sure"
    expect(card.locator(".category")).to_have_text(shown)
    _shot(page, "02-suggestions")

    tag, unwanted = suggestions.nth(0).get_attribute("data-tag"), suggestions.nth(1).get_attribute("data-tag")
    assert tag and unwanted
    suggestions.first.locator("button.accept").click()
    expect(card.locator(".chip.tag", has_text=tag)).to_be_visible()
    expect(card.locator(f'.chip.suggestion[data-tag="{tag}"]')).to_have_count(0)
    card.locator(f'.chip.suggestion[data-tag="{unwanted}"] button.reject').click()
    expect(card.locator(f'.chip.suggestion[data-tag="{unwanted}"]')).to_have_count(0)
    expect(card.locator(".chip.tag", has_text=unwanted)).to_have_count(0)
    _shot(page, "03-tags-reviewed")
    stored = fetch_photo(client, photo_id, auth_header(PLAYER_UID))
    assert stored is not None and stored["title"] == "Astronaut"
    assert tag in stored["tags"] and unwanted not in stored["tags"]
    assert unwanted not in {s["tag"] for s in stored["suggestions"]}
    return photo_id, tag


def _upload_error_in_words(page: Page) -> None:
    """Through the camera picker this time: what a phone's camera hands over arrives the same way."""
    page.set_input_files("#pick-camera", files=[
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"just some notes, not a photo"}])
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("data-code", "BAD_USER_INPUT")
    expect(error).to_have_text("That file is not a photo.")
    _shot(page, "04-upload-error")


def _play_three_duels(page: Page) -> list[str]:
    """Left, right, draw by the keyboard, each on the duel then on screen. Returns the duel ids."""
    page.click("#tabs a[data-view=play]")
    duel = page.locator("#duel")
    expect(duel).to_have_attribute("data-duel", re.compile(".+"))
    _images_loaded(page, "#duel")
    _shot(page, "05-duel")
    answered = []
    for key in ("ArrowLeft", "ArrowRight", "ArrowDown"):
        shown = duel.get_attribute("data-duel")
        assert shown
        answered.append(shown)
        page.keyboard.press(key)
        if key != "ArrowDown":  # the next duel replaces it, its images already there (preloaded)
            complete = page.wait_for_function(
                "(shown) => { const d = document.querySelector('#duel').dataset.duel;"
                " return d && d !== shown && { complete: [...document.querySelectorAll('#duel img')]"
                ".every((i) => i.complete && i.naturalWidth > 0) }; }", arg=shown).json_value()
            assert complete == {"complete": True}
    expect(page.locator("#vote-count")).to_have_text("3")
    effect = page.locator("#vote-effect")
    expect(effect).to_be_visible()
    expect(effect.locator(".label")).to_have_text("A draw")
    expect(effect.locator("figcaption")).to_have_count(2)
    expect(effect.locator("figcaption").first).to_contain_text("vote")
    _images_loaded(page, "#vote-effect")
    _shot(page, "06-votes-counted")
    return answered


def _board_ids(client: httpx.Client, category: str | None, period: str) -> list[str]:
    query = "query($c: String, $p: LeaderboardPeriod) { leaderboard(category: $c, period: $p, first: 20) { edges { node { id } } } }"
    edges = graphql(client, query, {"c": category, "p": period}, headers=auth_header(PLAYER_UID))["data"]["leaderboard"]["edges"]
    return [edge["node"]["id"] for edge in edges]


def _shown_ids(page: Page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "(items) => items.map((i) => i.dataset.photoId)")


def _my_photos_and_top(page: Page, client: httpx.Client, photo_id: str, voted: set[str]) -> None:
    """Each list as the service answers it (every vote applied by now: nothing moves meanwhile)."""
    query = "query($id: ID!) { photo(id: $id) { rating { score votes } } }"
    rating = graphql(client, query, {"id": photo_id}, headers=auth_header(PLAYER_UID))["data"]["photo"]["rating"]
    page.click("#tabs a[data-view=mine]")
    mine = page.locator(f'.card.mine[data-photo-id="{photo_id}"]')
    expect(mine).to_have_attribute("data-status", "READY")
    expect(mine.locator(".rating")).to_have_text(
        f"{rating['score']:.1f} / 10 · {rating['votes']} vote{'' if rating['votes'] == 1 else 's'}")
    _images_loaded(page, "#mine")
    _shot(page, "07-my-photos")

    expected = _board_ids(client, None, "WEEK")
    assert voted & set(expected)  # the player's votes settled photos enough to list them
    featured = graphql(client, "{ featured(first: 12) { id } }", headers=auth_header(PLAYER_UID))["data"]["featured"]
    page.click("#tabs a[data-view=top]")
    board = page.locator("#board li[data-photo-id]")
    expect(board).to_have_count(len(expected))
    assert _shown_ids(page, "#board li[data-photo-id]") == expected
    expect(page.locator("#featured li[data-photo-id]")).to_have_count(len(featured))
    assert _shown_ids(page, "#featured li[data-photo-id]") == [photo["id"] for photo in featured]
    _images_loaded(page, "#view-top")
    _shot(page, "08-top")

    category = board.first.get_attribute("data-category")
    page.select_option("#board-period", "ALL")
    page.select_option("#board-category", category)
    expected = _board_ids(client, category, "ALL")
    assert expected
    page.wait_for_function("(want) => [...document.querySelectorAll('#board li[data-photo-id]')]"
                           ".map((i) => i.dataset.photoId).join() === want", arg=",".join(expected))
    _images_loaded(page, "#view-top")
    _shot(page, "09-top-category")


def _public_name(client: httpx.Client) -> str | None:
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        me = graphql(client, "{ me { id displayName } }", headers=auth_header(PLAYER_UID))["data"]["me"]
        if (me and me["displayName"]) or time.monotonic() > deadline:
            return me["displayName"] if me else None
        time.sleep(0.1)


@pytest.mark.timeout(900)  # Chromium may have to be installed first
def test_a_player_signs_in_uploads_reviews_tags_and_plays_duels_in_the_browser(
    server: LiveServer, client: httpx.Client, others_photos: list[str], browser: Browser,
) -> None:
    for stale in artifacts_dir("web_client").glob("*.png"):  # only this run's screenshots are looked at
        stale.unlink()
    context = browser.new_context(viewport=MOBILE, is_mobile=True, has_touch=True, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    problems: list[str] = []  # script errors and policy (CSP) violations: the page must have none
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        with Rivals(server) as rivals:
            _sign_in(page, server.url)
            assert _public_name(client) == PLAYER_NAME  # the page claimed the name it signed in with

            photo_id, _ = _upload_and_review(page, client)
            _upload_error_in_words(page)

            duel_ids = _play_three_duels(page)
            rivals.stop()
        assert rivals.errors == [] and sum(rivals.accepted.values()) > 0, (rivals.errors, rivals.accepted)
        assert len(set(duel_ids)) == 3
        votes = server.run(VoteRepository(server.services.db).by_player(PLAYER_UID))
        assert [(v["_id"], v["choice"]) for v in votes] == [
            (vote_id(server, duel_id), choice) for duel_id, choice in zip(duel_ids, ("LEFT", "RIGHT", "DRAW"), strict=True)]
        voted = {str(v[side]) for v in votes for side in ("left", "right")}
        assert voted <= set(others_photos) | set(rivals.uploaded)  # never the player's own photo

        server.run(settled(server))
        _my_photos_and_top(page, client, photo_id, voted)
    finally:
        _shot(page, "99-last")
        context.close()
    assert problems == []
