"""A PhotoDuel client in Python with the `gql` library: the flows of docs/API.md, end to end.

    pip install 'gql[httpx,websockets]'
    python examples/python_client.py --url http://127.0.0.1:8000 --photo my.jpg --token "$ID_TOKEN"

It uploads a photo (GraphQL multipart request), waits for its tag suggestions on the
`tagSuggestionsReady` subscription (graphql-transport-ws), accepts the best one, plays a few duels and
reads the leaderboard, printing one JSON line per step. Against a dev server (`make serve`, which
accepts Firebase Auth emulator tokens) `--dev-user NAME` makes an emulator-style token instead of
`--token`: never in production, where a real Firebase ID token is required.

Errors come back as `TransportQueryError` with the server's `extensions.code`; the script shows what a
client should do with the common ones (see docs/API.md, "Errors").
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

from gql import Client, FileVar, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

UPLOAD = """
mutation Upload($file: Upload!, $title: String) {
  uploadPhoto(file: $file, title: $title) { id status }
}"""
SUGGESTIONS = """
subscription Suggestions($id: ID!) {
  tagSuggestionsReady(photoId: $id) { id status category suggestions { tag score source } }
}"""
ACCEPT = """
mutation Accept($id: ID!, $tags: [String!]!) { acceptTags(photoId: $id, tags: $tags) { id tags } }"""
NEXT_DUEL = """
query NextDuel { nextDuel { id left { id title } right { id title } expiresAt } }"""
VOTE = """
mutation Vote($duel: ID!, $choice: DuelChoice!) {
  voteDuel(duelId: $duel, choice: $choice) { accepted applied left { id rating { score votes } } }
}"""
LEADERBOARD = """
query Board { leaderboard(first: 5) { edges { node { id title rating { score votes } } } } }"""


def request(document: str, **variables: Any) -> GraphQLRequest:
    return GraphQLRequest(document, variable_values=variables or None)


def emulator_token(uid: str, project_id: str = "demo-photoduel") -> str:
    """An unsigned Auth-emulator-style ID token: a dev server accepts it, production refuses it."""
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    now = int(time.time())
    claims = {"iss": f"https://securetoken.google.com/{project_id}", "aud": project_id, "auth_time": now,
              "user_id": uid, "sub": uid, "iat": now, "exp": now + 3600,
              "firebase": {"identities": {}, "sign_in_provider": "custom"}}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def error_code(error: TransportQueryError) -> str | None:
    errors = error.errors or []
    return (errors[0].get("extensions") or {}).get("code") if errors else None


def step(name: str, **data: Any) -> None:
    print(json.dumps({"step": name, **data}), flush=True)


async def play(url: str, token: str, photo: Path, duels: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    # Uploads must carry a header a browser form cannot set (the server's CSRF rule for multipart).
    http = HTTPXAsyncTransport(url=f"{url}/graphql", headers={**headers, "Apollo-Require-Preflight": "true"},
                               timeout=60)
    ws_url = url.replace("http", "ws", 1) + "/graphql"
    ws = WebsocketsTransport(url=ws_url, init_payload=headers, subprotocols=["graphql-transport-ws"])

    async with Client(transport=http, fetch_schema_from_transport=False) as session:
        with photo.open("rb") as f:
            upload = request(UPLOAD, file=FileVar(f, filename=photo.name), title=photo.stem)
            uploaded = (await session.execute(upload, upload_files=True))["uploadPhoto"]
        step("uploaded", id=uploaded["id"], status=uploaded["status"])

        # Subscribe right after the upload: a photo already past PROCESSING is sent at once, so
        # nothing is missed between the two calls.
        async with Client(transport=ws) as live:
            async for event in live.subscribe(request(SUGGESTIONS, id=uploaded["id"])):
                ready = event["tagSuggestionsReady"]
                break
        step("suggestions", status=ready["status"], category=ready["category"],
             tags=[s["tag"] for s in ready["suggestions"]])

        if ready["suggestions"]:
            best = ready["suggestions"][0]["tag"]
            accepted = (await session.execute(request(ACCEPT, id=uploaded["id"], tags=[best])))["acceptTags"]
            step("accepted", tags=accepted["tags"])

        for n in range(duels):
            duel = (await session.execute(request(NEXT_DUEL)))["nextDuel"]
            if duel is None:  # too few photos for a duel yet: not an error
                step("no_duel")
                break
            choice = "LEFT" if n % 2 == 0 else "RIGHT"
            try:
                result = (await session.execute(request(VOTE, duel=duel["id"], choice=choice)))["voteDuel"]
            except TransportQueryError as error:
                if error_code(error) in ("DUEL_EXPIRED", "ALREADY_VOTED"):
                    continue  # take the next duel
                if error_code(error) == "RATE_LIMITED":
                    await asyncio.sleep(float(error.errors[0]["extensions"].get("retryAfter", 1)))
                    continue
                raise
            step("voted", accepted=result["accepted"], applied=result["applied"])

        board = (await session.execute(request(LEADERBOARD)))["leaderboard"]["edges"]
        step("leaderboard", photos=[e["node"]["id"] for e in board])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--photo", type=Path, required=True)
    parser.add_argument("--duels", type=int, default=3)
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--token", help="a Firebase ID token")
    who.add_argument("--dev-user", help="dev servers only: sign in as this name with an emulator token")
    args = parser.parse_args(argv)
    token = args.token or emulator_token(args.dev_user)
    try:
        asyncio.run(play(args.url.rstrip("/"), token, args.photo, args.duels))
    except TransportQueryError as error:
        step("error", code=error_code(error), message=str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
