"""The kept neighbour lists under concurrent batches.

Duels and similarPhotos read these lists and never search Milvus, so a list that misses a close photo
(because two batches were in flight at once and each searched before seeing the other) would silently
narrow matchmaking. The worker here runs two batches of two at a time, as `photoduel serve` does.

What the design guarantees (storage/neighbours.py, ml/pipelines/photo_vectors.py): a photo's list is its
exact top k at its ingest; a later photo joins it when the later one's search reached the earlier one
(its k + batch nearest) and belongs in the list, and always while the list is still short of k. So two
photos that are each in the other's exact top k always hold each other, whatever the order and
concurrency of their batches, and every list is full once its collection holds more than k photos; a
photo in p's top k that p was out of reach of may be missing (kNN is not symmetric and no reverse search
is made).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
from bson import ObjectId

from photoduel.settings import Settings
from tests.servers import LiveServer
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, skimage_photo, upload_ok

K = 4
OWNERS = [auth_header(f"owner-{i}") for i in range(3)]


def wait_all_ready(server: LiveServer, ids: list[str], timeout: float = 180.0) -> list[dict[str, Any]]:
    db = server.services.db
    oids = [ObjectId(i) for i in ids]

    async def ready() -> list[dict[str, Any]]:
        return await db.photos.find({"_id": {"$in": oids}, "status": "READY"}).to_list(None)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        docs = server.run(ready())
        if len(docs) == len(ids):
            return docs
        time.sleep(0.2)
    raise AssertionError(f"{len(docs)} of {len(ids)} photos READY after {timeout} s")


def exact_top_k(server: LiveServer, docs: list[dict[str, Any]]) -> dict[str, list[tuple[str, float]]]:
    """Brute-force cosine top k over the stored vectors: what every kept list should hold."""
    ids = [str(d["_id"]) for d in docs]
    vectors = server.run(server.services.vectors.get_vectors(docs[0]["vector_collection"], ids))
    matrix = np.stack([vectors[i] for i in ids])
    sims = matrix @ matrix.T
    top: dict[str, list[tuple[str, float]]] = {}
    for row, photo_id in enumerate(ids):
        order = [j for j in np.argsort(-sims[row]) if j != row][:K]
        top[photo_id] = [(ids[j], float(sims[row, j])) for j in order]
    return top


def test_mutual_neighbours_hold_each_other_after_concurrent_batches(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(neighbours_k=K, worker_batch_size=2, worker_concurrency=2, near_duplicate_cosine=0.999)
    with LiveServer(settings, run_worker=False) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        images = [generated_photo(300 + i) for i in range(9)] + [skimage_photo(n) for n in ("coffee", "chelsea")]
        ids = [upload_ok(http, jpeg_bytes(im), OWNERS[i % 3])["id"] for i, im in enumerate(images)]

    with LiveServer(settings, run_worker=True) as worker:
        worker.wait_model()
        docs = wait_all_ready(worker, ids)
        exact = exact_top_k(worker, docs)
    kept = {str(d["_id"]): {str(e["id"]): e["similarity"] for e in d["neighbours"]} for d in docs}
    mutual = 0
    for photo_id, top in exact.items():
        assert len(kept[photo_id]) == K
        similarities = [e["similarity"] for d in docs if str(d["_id"]) == photo_id for e in d["neighbours"]]
        assert similarities == sorted(similarities, reverse=True)
        for other, similarity in top:
            if photo_id in dict(exact[other]):
                mutual += 1
                assert other in kept[photo_id], f"{photo_id} lost its mutual neighbour {other}: {kept[photo_id]}"
                assert abs(kept[photo_id][other] - similarity) < 1e-4
    assert mutual >= len(ids)  # the check had pairs to check


def test_a_short_list_fills_from_photos_whose_searches_never_reach_it(make_settings: Callable[..., Settings]) -> None:
    """A READY photo whose list is short of k (as a collection's first photos' are) and that later photos'
    searches (k + batch nearest) never reach: offers used to go only to photos a search reached, so its
    list stayed short for good. Now every later batch offers itself to it until it is full."""
    settings = make_settings(neighbours_k=K, worker_batch_size=1, worker_concurrency=1, near_duplicate_cosine=0.999)
    with LiveServer(settings, run_worker=False) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        first = [upload_ok(http, jpeg_bytes(generated_photo(500 + i)), OWNERS[i % 3])["id"] for i in range(K + 2)]
    loner = ObjectId()
    with LiveServer(settings, run_worker=True) as worker:
        worker.wait_model()
        docs = wait_all_ready(worker, first)
        # A photo far from all of them (the opposite of their mean direction), READY, with a list of one.
        collection = docs[0]["vector_collection"]
        vectors = worker.run(worker.services.vectors.get_vectors(collection, first))
        far = -np.mean(np.stack(list(vectors.values())), axis=0)
        far /= np.linalg.norm(far)
        partner = {"id": docs[0]["_id"], "similarity": round(float(far @ vectors[first[0]]), 5)}

        async def seed_loner() -> None:
            await worker.services.vectors.upsert(collection, [
                {"id": str(loner), "vector": far, "owner": "owner-x", "status": "READY", "category": ""}])
            await worker.services.db.photos.insert_one({
                "_id": loner, "owner": "owner-x", "status": "READY", "vector_collection": collection,
                "neighbours": [partner], "neighbours_short": True})

        worker.run(seed_loner())

    with LiveServer(settings, run_worker=False) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        later = [upload_ok(http, jpeg_bytes(generated_photo(600 + i)), OWNERS[i % 3])["id"] for i in range(K)]
    with LiveServer(settings, run_worker=True) as worker:
        worker.wait_model()
        wait_all_ready(worker, later)
        doc = worker.run(worker.services.db.photos.find_one({"_id": loner}))
        seen_later = worker.run(worker.services.vectors.get_vectors(collection, later))
        reached = worker.run(worker.services.vectors.search(collection, np.stack(list(seen_later.values())),
                                                            limit=K + 1))
    assert str(loner) not in {h.id for hits in reached for h in hits}  # the later searches never reach it
    listed = [str(e["id"]) for e in doc["neighbours"]]
    assert len(listed) == K and set(listed) <= {first[0], *later}, listed
    assert doc["neighbours_short"] is False
    similarities = [e["similarity"] for e in doc["neighbours"]]
    assert similarities == sorted(similarities, reverse=True)


def test_an_offer_made_while_a_photo_is_processing_survives_its_ready_write(
    make_settings: Callable[..., Settings],
) -> None:
    """A concurrent batch may offer its photo to one still PROCESSING here; the READY write merges."""
    settings = make_settings(neighbours_k=K)
    with LiveServer(settings, run_worker=False) as api, httpx.Client(base_url=api.url, timeout=60) as http:
        photo_id = upload_ok(http, jpeg_bytes(generated_photo(77)), OWNERS[0])["id"]
        offered = {"id": ObjectId(), "similarity": 0.99}  # a photo of another batch, not READY yet

        async def offer() -> None:
            await api.services.db.photos.update_one({"_id": ObjectId(photo_id), "status": "PROCESSING"},
                                                    {"$push": {"neighbours": offered}})

        api.run(offer())

    with LiveServer(settings, run_worker=True) as worker:
        worker.wait_model()
        (doc,) = wait_all_ready(worker, [photo_id])
    assert doc["neighbours"][0] == offered


def test_short_flags_are_set_at_start_for_photos_from_before_them_and_after_a_change_of_k(
    make_settings: Callable[..., Settings],
) -> None:
    """A deployment's READY photos made before `neighbours_short` existed carry no flag, so a short list
    among them would never be found; and after k grows, lists full under the old k are short. Starting
    the service sets the flag from each list's length: for photos without one, or for all after k changed."""
    settings = make_settings(neighbours_k=K)
    short, full, processing, flagged = ObjectId(), ObjectId(), ObjectId(), ObjectId()
    entries = [{"id": ObjectId(), "similarity": 0.5} for _ in range(K)]

    def flags(api: LiveServer) -> dict[ObjectId, Any]:
        docs = api.run(api.services.db.photos.find({"_id": {"$in": [short, full, processing, flagged]}}).to_list(None))
        return {d["_id"]: d.get("neighbours_short") for d in docs}

    with LiveServer(settings, run_worker=False) as api:  # this start records the k the flags are for
        api.run(api.services.db.photos.insert_many([{"owner": "legacy", "sha256": str(doc["_id"]),
                                                     "created_at": datetime.now(UTC), **doc} for doc in [
            {"_id": short, "status": "READY", "neighbours": entries[:1]},
            {"_id": full, "status": "READY", "neighbours": entries},
            {"_id": processing, "status": "PROCESSING"},  # its READY write sets the flag
            {"_id": flagged, "status": "READY", "neighbours": entries[:2], "neighbours_short": False},
        ]]))
    with LiveServer(settings, run_worker=False) as api:
        after_restart = flags(api)
    # a flag already set is the pipeline's, for this k: left alone
    assert after_restart == {short: True, full: False, processing: None, flagged: False}

    with LiveServer(settings.model_copy(update={"neighbours_k": K + 1}), run_worker=False) as api:
        after_k_change = flags(api)
    assert after_k_change == {short: True, full: True, processing: None, flagged: True}
