"""Promotion outside the app: a share page per photo and an Atom feed of the featured photos.

Both are read without signing in, by link unfurlers (Open Graph, Twitter cards) and feed readers, so
they show only what is public: a READY photo (never a processing, hidden or deleted one, which answer
404 like an unknown id) and its display rendition, which is re-encoded from pixels and carries no EXIF
(`ml.images`). Links are absolute: crawlers do not resolve relative ones, so they are built from
`PHOTODUEL_PUBLIC_URL` when the service sits behind a proxy, else from the request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape as xml_escape

from starlette.requests import Request
from starlette.responses import Response

from api.public_url import public_base_url
from photos.queries import Viewer, category_filter, visible
from storage.base import parse_object_id

#: Share pages and feeds are public: what anyone, signed in or not, may see.
ANYONE = Viewer(uid=None)

# Entries in a featured feed: readers poll it, and the newest are what they have not seen.
FEED_ENTRIES = 50
CACHE = "public, max-age=300"
# The page loads its one image from here and nothing else: no script, no style, no form.
PAGE_CSP = "default-src 'none'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def photo_title(doc: dict[str, Any]) -> str:
    return doc.get("title") or (f"A {doc['category']} photo" if doc.get("category") else "A photo")


def photo_summary(doc: dict[str, Any]) -> str:
    """What a card says under the title: the score players gave it and its subject."""
    parts = []
    rating = doc.get("rating") or {}
    if rating.get("votes"):
        parts.append(f"Scored {rating['score']:.1f}/10 by players over {rating['votes']} duels")
    if doc.get("category"):
        parts.append(f"in {doc['category']}")
    tags = doc.get("tags") or []
    if tags:
        parts.append("· " + ", ".join(tags[:5]))
    return " ".join(parts) or "A photo on PhotoDuel"


def share_page_html(doc: dict[str, Any], *, page_url: str, image_url: str) -> str:
    """The page: a visible image for people, and the meta tags a link preview reads."""
    title, summary = escape(photo_title(doc)), escape(photo_summary(doc))
    display = (doc.get("renditions") or {}).get("display") or {}
    size = ""
    if display.get("width") and display.get("height"):
        size = (f'<meta property="og:image:width" content="{int(display["width"])}">\n'
                f'<meta property="og:image:height" content="{int(display["height"])}">\n')
    page, image = escape(page_url, quote=True), escape(image_url, quote=True)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · PhotoDuel</title>
<meta name="description" content="{summary}">
<link rel="canonical" href="{page}">
<meta property="og:type" content="article">
<meta property="og:site_name" content="PhotoDuel">
<meta property="og:title" content="{title}">
<meta property="og:description" content="{summary}">
<meta property="og:url" content="{page}">
<meta property="og:image" content="{image}">
<meta property="og:image:type" content="image/jpeg">
{size}<meta name="twitter:card" content="summary_large_image">
<meta name="twitter:title" content="{title}">
<meta name="twitter:description" content="{summary}">
<meta name="twitter:image" content="{image}">
</head>
<body>
<main>
<h1>{title}</h1>
<img src="{image}" alt="{title}">
<p>{summary}</p>
</main>
</body>
</html>
"""


def _atom_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def featured_feed_xml(docs: list[dict[str, Any]], *, base: str, category: str | None,
                      feed_url: str, now: datetime) -> str:
    """An Atom 1.0 feed (RFC 4287): one entry per featured photo, stamped when it became featured."""
    subject = f" in {category}" if category else ""
    updated = max((d["featured_at"] for d in docs), default=now)
    entries = []
    for doc in docs:
        page = f"{base}/p/{doc['_id']}"
        image = f"{base}/images/{doc['_id']}/display"
        entries.append(f"""  <entry>
    <id>{xml_escape(page)}</id>
    <title>{xml_escape(photo_title(doc))}</title>
    <link rel="alternate" type="text/html" href="{xml_escape(page)}"/>
    <link rel="enclosure" type="image/jpeg" href="{xml_escape(image)}"/>
    <updated>{_atom_time(doc['featured_at'])}</updated>
    <summary>{xml_escape(photo_summary(doc))}</summary>
  </entry>
""")
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <id>{xml_escape(feed_url)}</id>
  <title>PhotoDuel featured photos{xml_escape(subject)}</title>
  <link rel="self" type="application/atom+xml" href="{xml_escape(feed_url)}"/>
  <link rel="alternate" type="text/html" href="{xml_escape(base)}/app"/>
  <author><name>PhotoDuel</name></author>
  <updated>{_atom_time(updated)}</updated>
{"".join(entries)}</feed>
"""


def _not_found() -> Response:
    return Response("Not found\n", status_code=404, media_type="text/plain; charset=utf-8")


async def share_page(request: Request) -> Response:
    oid = parse_object_id(request.path_params["photo_id"])
    if oid is None:
        return _not_found()
    doc = await request.app.state.services.photos.get(oid)
    if doc is None or not visible(doc, ANYONE) or not (doc.get("renditions") or {}).get("display"):
        return _not_found()
    base = public_base_url(request)
    html = share_page_html(doc, page_url=f"{base}/p/{oid}", image_url=f"{base}/images/{oid}/display")
    return Response(html, media_type="text/html; charset=utf-8",
                    headers={"Cache-Control": CACHE, "Content-Security-Policy": PAGE_CSP})


async def featured_feed(request: Request) -> Response:
    """`/feeds/featured.atom`, optionally `?category=NAME`."""
    raw = request.query_params.get("category", "").strip()
    category = category_filter(raw) if raw else None
    docs = await request.app.state.services.photos.recently_featured(category, limit=FEED_ENTRIES)
    base = public_base_url(request)
    feed_url = f"{base}/feeds/featured.atom" + (f"?category={quote(category)}" if category else "")
    body = featured_feed_xml(docs, base=base, category=category, feed_url=feed_url,
                             now=datetime.now(UTC))
    return Response(body, media_type="application/atom+xml; charset=utf-8", headers={"Cache-Control": CACHE})
