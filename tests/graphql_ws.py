"""A graphql-transport-ws client for tests: connect with a user's token, subscribe, read per operation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_ws import AsyncWebSocketSession, aconnect_ws

from tests.tokens import auth_header


class Ws:
    """A graphql-transport-ws client: messages sorted by operation id as they arrive."""

    def __init__(self, session: AsyncWebSocketSession) -> None:
        self.session = session
        self.inbox: dict[str, list[dict[str, Any]]] = {}

    async def subscribe(self, op_id: str, query: str, **variables: Any) -> None:
        await self.session.send_json({"id": op_id, "type": "subscribe",
                                      "payload": {"query": query, "variables": variables}})

    async def next(self, op_id: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.inbox.get(op_id):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no message for {op_id}")
            message = await self.session.receive_json(timeout=remaining)
            if message["type"] == "ping":
                await self.session.send_json({"type": "pong"})
            elif "id" in message:
                self.inbox.setdefault(message["id"], []).append(message)
        return self.inbox[op_id].pop(0)


@contextlib.asynccontextmanager
async def connect(base_url: str, uid: str | None) -> AsyncIterator[Ws]:
    """A websocket to `<base_url>/graphql`, initialised with `uid`'s token (none: anonymous)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        ws_url = base_url.replace("http://", "ws://", 1) + "/graphql"
        async with aconnect_ws(ws_url, client, subprotocols=["graphql-transport-ws"]) as session:
            await session.send_json({"type": "connection_init", "payload": auth_header(uid) if uid else {}})
            assert (await session.receive_json(timeout=10))["type"] == "connection_ack"
            yield Ws(session)
