"""Promotion outside the app over real HTTP: the share page's Open Graph and Twitter card tags, its image
without EXIF, 404 for anything not public, and the Atom feed of featured photos per category."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from bson import ObjectId
from PIL import Image

from tests.servers import LiveServer, graphql
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, upload_ok, wait_ready

OWNER = auth_header("sharer")
ATOM = "{http://www.w3.org/2005/Atom}"
TITLE = 'Dawn <script>alert("x")</script> & fog'
REPORT = "mutation($id: ID!) { reportPhoto(id: $id, reason: SPAM) }"


class MetaTags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.scripts += 1
        key = values.get("property") or values.get("name")
        if tag == "meta" and key and values.get("content") is not None:
            self.meta[key] = str(values["content"])


def meta_tags(html: str) -> MetaTags:
    parser = MetaTags()
    parser.feed(html)
    return parser


def jpeg_with_gps(seed: int) -> bytes:
    """A camera-like JPEG: EXIF with a make, a model and a GPS position, which must never be served."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "ShareCam", "Model 7"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    buf = io.BytesIO()
    generated_photo(seed).save(buf, format="JPEG", quality=92, exif=exif)
    assert b"ShareCam" in buf.getvalue()
    return buf.getvalue()


@pytest.fixture(scope="module")
def shared(client: httpx.Client, server: LiveServer) -> dict[str, Any]:
    photo = upload_ok(client, jpeg_with_gps(4100), OWNER, title=TITLE)
    ready = wait_ready(client, photo["id"], OWNER)
    return {"id": ready["id"], "doc": server.run(server.services.photos.get(ObjectId(ready["id"])))}


def test_the_share_page_carries_open_graph_and_twitter_card_tags(client: httpx.Client,
                                                                   shared: dict[str, Any]) -> None:
    response = client.get(f"/p/{shared['id']}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src" not in response.headers["content-security-policy"]
    assert "img-src 'self'" in response.headers["content-security-policy"]
    tags = meta_tags(response.text)
    base = str(client.base_url).rstrip("/")
    assert tags.meta["og:title"] == TITLE, "the title is escaped in the HTML and intact once parsed"
    assert tags.scripts == 0, "a title cannot inject markup"
    assert tags.meta["og:url"] == f"{base}/p/{shared['id']}"
    assert tags.meta["og:image"] == f"{base}/images/{shared['id']}/display"
    assert tags.meta["twitter:card"] == "summary_large_image"
    assert tags.meta["twitter:image"] == tags.meta["og:image"]
    assert tags.meta["twitter:title"] == TITLE
    display = shared["doc"]["renditions"]["display"]
    assert (int(tags.meta["og:image:width"]), int(tags.meta["og:image:height"])) == (display["width"],
                                                                                      display["height"])
    assert shared["doc"]["category"] in tags.meta["og:description"]


def test_the_shared_image_carries_no_exif(client: httpx.Client, shared: dict[str, Any]) -> None:
    image_url = meta_tags(client.get(f"/p/{shared['id']}").text).meta["og:image"]
    response = client.get(image_url)  # no sign-in
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert b"ShareCam" not in response.content and b"Exif" not in response.content
    assert not Image.open(io.BytesIO(response.content)).getexif()


def test_only_public_photos_have_a_share_page(client: httpx.Client, server: LiveServer,
                                             shared: dict[str, Any]) -> None:
    assert client.get(f"/p/{ObjectId()}").status_code == 404
    assert client.get("/p/not-an-id").status_code == 404

    reported = upload_ok(client, jpeg_bytes(generated_photo(4102)), OWNER, title="reported")
    wait_ready(client, reported["id"], OWNER)
    assert client.get(f"/p/{reported['id']}").status_code == 200
    reports = server.services.settings.moderation_reports_to_hide
    for i in range(reports):  # enough distinct players' reports hide it pending review
        body = graphql(client, REPORT, {"id": reported["id"]}, headers=auth_header(f"reporter-{i}"))
        assert body.get("errors") is None, body
    hidden = client.get(f"/p/{reported['id']}")
    assert hidden.status_code == 404 and "reported" not in hidden.text
    assert client.get(f"/images/{reported['id']}/display").status_code == 404

    gone = upload_ok(client, jpeg_bytes(generated_photo(4103)), OWNER, title="deleted")
    wait_ready(client, gone["id"], OWNER)
    assert client.get(f"/p/{gone['id']}").status_code == 200
    body = graphql(client, "mutation($id: ID!) { deletePhoto(id: $id) { photoId } }", {"id": gone["id"]}, headers=OWNER)
    assert body.get("errors") is None, body
    assert client.get(f"/p/{gone['id']}").status_code == 404

    assert client.get(f"/p/{shared['id']}").status_code == 200, "the others' pages are untouched"


def entries(feed: ET.Element) -> list[dict[str, str]]:
    out = []
    for entry in feed.findall(f"{ATOM}entry"):
        links = {link.get("rel"): str(link.get("href")) for link in entry.findall(f"{ATOM}link")}
        out.append({"id": str(entry.findtext(f"{ATOM}id")), "title": str(entry.findtext(f"{ATOM}title")),
                    "page": links["alternate"], "image": links["enclosure"]})
    return out


def test_the_featured_feed_lists_featured_photos_per_category(client: httpx.Client, server: LiveServer,
                                                              shared: dict[str, Any]) -> None:
    other = wait_ready(client, upload_ok(client, jpeg_bytes(generated_photo(4101)), OWNER, title="second")["id"], OWNER)
    assert server.run(server.services.photos.mark_featured(ObjectId(shared["id"])))
    category = shared["doc"]["category"]

    response = client.get("/feeds/featured.atom", params={"category": category})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(response.content)
    assert feed.tag == f"{ATOM}feed" and feed.findtext(f"{ATOM}updated")
    listed = entries(feed)
    base = str(client.base_url).rstrip("/")
    mine = [e for e in listed if e["page"] == f"{base}/p/{shared['id']}"]
    assert len(mine) == 1 and mine[0]["title"] == TITLE
    assert mine[0]["image"] == f"{base}/images/{shared['id']}/display"
    assert all(e["page"] != f"{base}/p/{other['id']}" for e in listed), "not featured: not in the feed"

    shouted = entries(ET.fromstring(client.get("/feeds/featured.atom", params={"category": f" {category.upper()} "}).content))
    assert [e["page"] for e in shouted] == [e["page"] for e in listed], "a category is a category in any case"

    elsewhere = entries(ET.fromstring(client.get("/feeds/featured.atom",
                                                 params={"category": f"{category}-not"}).content))
    assert elsewhere == []
    everything = entries(ET.fromstring(client.get("/feeds/featured.atom").content))
    assert any(e["page"] == mine[0]["page"] for e in everything)

