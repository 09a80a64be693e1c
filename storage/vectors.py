"""Vectors in Milvus, behind one small class.

One collection per (purpose, embedding model, dimension): when the CLIP model changes, `photoduel
reindex` fills a new collection while the old one keeps serving. pymilvus' `MilvusClient` is
blocking, so every call runs in a worker thread; milvus-lite is also not meant for concurrent
callers, so calls are serialised with a lock (Milvus standalone does not need it, and the lock costs
little next to a search). The index is FLAT with cosine: exact, which milvus-lite needs for filtered
searches to keep their recall; Milvus standalone at scale can switch `index_type` to HNSW.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

# The photo embeddings' purpose: ingest writes their collections (one per model), a deletion removes a
# photo's row from each.
PHOTO_VECTORS = "photos"


@dataclass(frozen=True)
class VectorHit:
    """`similarity`: cosine for COSINE collections; for L2 collections, the Euclidean distance
    (Milvus reports it squared; it is converted here so thresholds read as in the literature)."""

    id: str
    similarity: float
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class ScalarField:
    name: str
    max_length: int = 256


def collection_name(purpose: str, model_id: str, dim: int) -> str:
    return (collection_prefix(purpose) + re.sub(r"[^A-Za-z0-9_]", "_", f"{model_id}_{dim}"))[:255]


def collection_prefix(purpose: str) -> str:
    """What the names of one purpose's collections (one per model) start with."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{purpose}__")


def milvus_filter_eq(field: str, value: str) -> str:
    return f'{field} == "' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _milvus_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def milvus_filter_not_in(field: str, values: Sequence[str]) -> str:
    """A filter leaving out rows whose `field` is one of `values`; "" (no filter) when there are none."""
    if not values:
        return ""
    return f"{field} not in [" + ", ".join(_milvus_string(v) for v in values) + "]"


class VectorIndex:
    def __init__(self, uri: str, *, token: str | None = None, index_type: str = "FLAT") -> None:
        if "://" not in uri:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        self.uri = uri
        self._token = token
        self._index_type = index_type
        self._client: MilvusClient | None = None
        self._lock = threading.Lock()
        self._known: set[str] = set()

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        def run() -> Any:
            with self._lock:
                return fn(*args, **kwargs)

        return await asyncio.to_thread(run)

    def _connect(self) -> MilvusClient:
        if self._client is None:
            kwargs: dict[str, Any] = {"token": self._token} if self._token else {}
            if "://" not in self.uri:
                # milvus-lite serves in this process: pymilvus' keepalive pings (every 10 s, even with no
                # call open) only make its gRPC server answer GOAWAY "too_many_pings" into the log.
                kwargs["grpc_options"] = {"grpc.keepalive_time_ms": 2**31 - 1,
                                          "grpc.keepalive_permit_without_calls": False}
            self._client = MilvusClient(self.uri, **kwargs)
        return self._client

    async def open(self) -> None:
        await self._call(self._connect)

    async def close(self) -> None:
        def close() -> None:
            if self._client is not None:
                self._client.close()
                self._client = None
            if "://" not in self.uri:
                # milvus-lite keeps its in-process server (and the file lock) until interpreter exit
                # unless told otherwise; release it so another process (a CLI command) can open the file.
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self.uri)

        await self._call(close)

    async def ping(self) -> bool:
        await self._call(lambda: self._connect().list_collections())
        return True

    async def ensure_collection(
        self, name: str, dim: int, scalars: Sequence[ScalarField] = (), *, metric: str = "COSINE"
    ) -> None:
        if name in self._known:
            return

        def create() -> None:
            client = self._connect()
            if not client.has_collection(name):
                schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
                schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
                schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
                for scalar in scalars:
                    schema.add_field(scalar.name, DataType.VARCHAR, max_length=scalar.max_length)
                index = client.prepare_index_params()
                index.add_index(field_name="vector", index_type=self._index_type, metric_type=metric)
                client.create_collection(name, schema=schema, index_params=index)
            client.load_collection(name)

        await self._call(create)
        self._known.add(name)

    async def load(self, name: str) -> None:
        """Load an existing collection for reads and deletes (Milvus keeps a collection released after a
        restart until asked to load it); once per process."""
        if name not in self._known:
            await self._call(lambda: self._connect().load_collection(name))
            self._known.add(name)

    async def upsert(self, name: str, rows: Sequence[Mapping[str, Any]], *, flush: bool = True) -> None:
        """Insert or replace rows; flushed by default because searches before a flush are slow."""
        if not rows:
            return
        data = [
            {**row, "vector": np.asarray(row["vector"], dtype=np.float32).tolist()} for row in rows
        ]

        def upsert() -> None:
            client = self._connect()
            client.upsert(name, data)
            if flush:
                client.flush(name)

        await self._call(upsert)

    async def search(
        self,
        name: str,
        vectors: np.ndarray,
        *,
        limit: int,
        filter: str = "",
        output_fields: Sequence[str] = (),
        metric: str = "COSINE",
    ) -> list[list[VectorHit]]:
        if len(vectors) == 0:
            return []
        data = [np.asarray(v, dtype=np.float32).tolist() for v in vectors]

        def search() -> Any:
            return self._connect().search(
                name, data=data, limit=limit, filter=filter, output_fields=list(output_fields),
                search_params={"metric_type": metric},
            )

        def score(distance: float) -> float:
            return float(np.sqrt(max(distance, 0.0))) if metric == "L2" else float(distance)

        raw = await self._call(search)
        return [
            [VectorHit(id=str(hit["id"]), similarity=score(hit["distance"]),
                       fields={k: v for k, v in (hit.get("entity") or {}).items() if k != "vector"})
             for hit in hits]
            for hits in raw
        ]

    async def get_vectors(self, name: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        if not ids:
            return {}
        rows = await self._call(lambda: self._connect().get(name, ids=list(ids), output_fields=["vector"]))
        return {str(r["id"]): np.asarray(r["vector"], dtype=np.float32) for r in rows}

    async def query_ids(self, name: str, filter: str, *, limit: int = 16384) -> list[str]:
        rows = await self._call(lambda: self._connect().query(name, filter=filter, output_fields=["id"], limit=limit))
        return [str(r["id"]) for r in rows]

    async def delete(self, name: str, ids: Sequence[str]) -> None:
        """Remove rows by id; nothing to do when the collection does not exist (yet)."""
        if not ids:
            return

        def delete() -> None:
            client = self._connect()
            if client.has_collection(name):
                client.delete(name, ids=list(ids))

        await self._call(delete)

    async def delete_everywhere(self, purpose: str, ids: Sequence[str]) -> list[str]:
        """Remove rows by id from every collection of a purpose (each model's, the old ones a reindex left
        included); the collections they were removed from."""
        names = [n for n in await self.list_collections() if n.startswith(collection_prefix(purpose))]
        for name in names:
            await self.load(name)
            await self.delete(name, ids)
        return names

    async def count(self, name: str) -> int:
        stats = await self._call(lambda: self._connect().get_collection_stats(name))
        return int(stats.get("row_count", 0))

    async def list_collections(self) -> list[str]:
        return list(await self._call(lambda: self._connect().list_collections()))
