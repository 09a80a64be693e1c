"""Measure what the similarity-group threshold separates, and what reading a group costs per size.

    .venv/bin/python -m bench.group_threshold [--model PATH] [--out PATH]   # report: bench/results/group_threshold.md

Why: `PHOTODUEL_GROUP_COSINE` decides which photos are one subject (storage/group_membership.py), and
`PHOTODUEL_GROUP_MAX_SIZE` bounds a group. The threshold should come from the cosines the deployed CLIP
gives same-subject pairs and unrelated pairs, so this script measures, for any sentence-transformers
CLIP folder, through the production embedder:

- copies: resized (0.7x, 0.5x) and recompressed (JPEG 75, 60, 30) renditions of each photo;
- crops: 90 / 80 / 70 / 60% of the frame, centred and in a corner;
- halves: the left and right halves of a photo against each other and against the whole (a bridge);
- unrelated: every pair of distinct photos (skimage's real photos, and generated scenes);

and, per candidate threshold, the share of each kind that would be grouped. Without `--model` it builds
the tiny random CLIP the tests use (tests/tiny_clip.py): its numbers say where the tests' thresholds
sit, nothing about subjects. The real `clip-ViT-B-32` cannot be downloaded on this machine; run the
script with `--model` pointing at its folder wherever it is on disk to choose the production value.

The size part times what `Photo.group` and the groups listing read per group (every READY member's
rating, one indexed read) at several group sizes, on the embedded server.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.embedder import ClipEmbedder
from tests.servers import scratch_db
from tests.uploads import crop, half, skimage_photo
from tests.uploads import generated_photo as generated

# Real photos that ship with scikit-image; the near-black and binary ones (hubble_deep_field, horse,
# binary_blobs, moon) are left out: a random model puts them at 0.94-1.0 to each other.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "brick", "grass",
          "immunohistochemistry", "page", "text", "clock", "retina", "colorwheel", "logo")
GENERATED = 12
THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.98, 0.99)
SIZES = (1, 10, 100, 1000)


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def scaled(image: Image.Image, factor: float) -> Image.Image:
    return image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                        Image.Resampling.LANCZOS)


COPIES: dict[str, Callable[[Image.Image], Image.Image]] = {
    "0.7x, JPEG 75": lambda im: jpeg(scaled(im, 0.7), 75),
    "0.5x, JPEG 60": lambda im: jpeg(scaled(im, 0.5), 60),
    "JPEG 30": lambda im: jpeg(im, 30),
}
CROPS: dict[str, Callable[[Image.Image], Image.Image]] = {
    f"{int(f * 100)}%{' corner' if corner else ''}": (
        lambda im, f=f, at=0.0 if corner else 0.5: crop(im, f, left=at, top=at))
    for f in (0.9, 0.8, 0.7, 0.6) for corner in (False, True)
}


def stats(values: np.ndarray) -> str:
    return f"{values.min():.3f} | {np.median(values):.3f} | {values.max():.3f}"


def measure(embedder: ClipEmbedder) -> tuple[list[str], dict[str, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The cosine table, each kind's cosines, and every image's vector with its subject (for `linkage`)."""
    images = {name: skimage_photo(name) for name in PHOTOS}
    photos = list(images.values())
    originals = embedder.embed_images(photos)
    kinds: dict[str, np.ndarray] = {}
    vectors, subjects = [originals], [np.arange(len(photos))]
    for label, make in {**{f"copy {k}": v for k, v in COPIES.items()},
                        **{f"crop {k}": v for k, v in CROPS.items()}}.items():
        variants = embedder.embed_images([make(im) for im in photos])
        kinds[label] = (originals * variants).sum(axis=1)
        vectors.append(variants)
        subjects.append(np.arange(len(photos)))
    left, right = [half(im, "left") for im in photos], [half(im, "right") for im in photos]
    lv, rv = embedder.embed_images(left), embedder.embed_images(right)
    kinds["half vs whole"] = np.concatenate([(lv * originals).sum(axis=1), (rv * originals).sum(axis=1)])
    kinds["left vs right half"] = (lv * rv).sum(axis=1)
    upper = np.triu_indices(len(photos), 1)
    kinds["unrelated photos"] = (originals @ originals.T)[upper]
    scenes = embedder.embed_images([generated(seed) for seed in range(GENERATED)])  # the tests' scenes
    kinds["unrelated generated scenes"] = (scenes @ scenes.T)[np.triu_indices(GENERATED, 1)]
    lines = ["| pairs | n | min | median | max |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {label} | {len(v)} | {stats(v)} |" for label, v in kinds.items()]
    return lines, kinds, (np.concatenate(vectors), np.concatenate(subjects))


def components(sims: np.ndarray, threshold: float) -> np.ndarray:
    """Single linkage, as ingest groups (a photo joins every group it links to at the threshold): each
    image's component label."""
    parent = np.arange(len(sims))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for i, j in zip(*np.nonzero(np.triu(sims >= threshold, 1)), strict=True):
        parent[root(int(i))] = root(int(j))
    return np.array([root(i) for i in range(len(sims))])


def linkage(vectors: np.ndarray, subjects: np.ndarray) -> list[str]:
    """Per threshold, what the groups would be when every photo, copy and crop is uploaded: the subjects
    kept whole (all their images in one group), and the groups that mix subjects (chaining)."""
    sims = vectors @ vectors.T
    count = len(set(subjects.tolist()))
    lines = ["| threshold | subjects whole | images in their subject's main group | groups mixing subjects "
             "| largest group |", "| ---: | ---: | ---: | ---: | ---: |"]
    for t in THRESHOLDS:
        labels = components(sims, t)
        whole = sum(len(set(labels[subjects == s].tolist())) == 1 for s in range(count))
        placed = sum(np.bincount(np.unique(labels[subjects == s], return_inverse=True)[1]).max()
                     for s in range(count))
        mixing = sum(len(set(subjects[labels == g].tolist())) > 1 for g in set(labels.tolist()))
        largest = np.bincount(np.unique(labels, return_inverse=True)[1]).max()
        lines.append(f"| {t:.2f} | {whole}/{count} | {placed / len(labels):.0%} | {mixing} | {largest} |")
    return lines


def grouped_share(kinds: dict[str, np.ndarray]) -> list[str]:
    header = "| threshold | " + " | ".join(kinds) + " |"
    lines = [header, "| ---: " * (len(kinds) + 1) + "|"]
    for t in THRESHOLDS:
        lines.append(f"| {t:.2f} | " + " | ".join(f"{(v >= t).mean():.0%}" for v in kinds.values()) + " |")
    return lines


async def time_group_reads(uri: str) -> list[str]:
    from storage.mongo import ensure_indexes
    from storage.photos import PhotoRepository

    async with scratch_db(uri, "bench") as db:
        await ensure_indexes(db)
        photos = PhotoRepository(db)
        lines = ["| group size | read of its members (ms, median of 20) |", "| ---: | ---: |"]
        filler = [{"_id": i, "owner": "x", "sha256": uuid.uuid4().hex, "status": "READY",
                   "group_id": uuid.uuid4().hex, "rating": {"mu": 25.0, "sigma": 5.0, "conservative": 10.0},
                   "neighbours": [{"id": j, "similarity": 0.5} for j in range(24)]}
                  for i in range(20_000)]  # other groups' photos, so the read must use the index
        await db.photos.insert_many(filler)
        for size in SIZES:
            group = uuid.uuid4().hex
            await db.photos.insert_many([{"owner": "x", "sha256": uuid.uuid4().hex, "status": "READY",
                                          "group_id": group, "category": "c",
                                          "rating": {"mu": 25.0, "sigma": 5.0, "conservative": 10.0, "votes": 0}}
                                         for _ in range(size)])
            times = []
            for _ in range(20):
                started = time.perf_counter()
                found = await photos.group_members([group], ("rating", "category"))  # type: ignore[list-item]
                times.append((time.perf_counter() - started) * 1000)
                assert len(found) == size
            lines.append(f"| {size} | {np.median(times):.1f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a sentence-transformers CLIP folder (default: the tests' tiny CLIP)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/group_threshold.md"))
    parser.add_argument("--skip-sizes", action="store_true", help="only the similarities")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    model = args.model
    if model is None:
        from tests.tiny_clip import build_tiny_clip

        model = str(build_tiny_clip(Path(tempfile.mkdtemp()) / "tiny-clip"))
    embedder = ClipEmbedder(model, device="cpu", batch_size=16)
    embedder.load()
    table, kinds, (vectors, subjects) = measure(embedder)
    report = [
        "# Similarity-group threshold and group size: bench/group_threshold.py report", "",
        f"Command: `.venv/bin/python -m bench.group_threshold{' --model ' + args.model if args.model else ''}`  ",
        f"Machine: {platform.machine()}, Python {platform.python_version()}  ",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  ",
        f"Model: {args.model or 'the tests tiny random CLIP (tests/tiny_clip.py, seed 0): no semantics'}", "",
        "## Cosine similarity of image embeddings", "", *table, "",
        "## Share of pairs at or above each threshold (grouped)", "", *grouped_share(kinds), "",
        f"## Groups formed by single linkage ({len(PHOTOS)} subjects, each with its {len(COPIES)} copies "
        f"and {len(CROPS)} crops)", "",
        "What ingest would make of these images: a photo joins every group it links to at the threshold, "
        "so one pair above it joins two subjects, and a chain of crops can carry one into another.", "",
        *linkage(vectors, subjects), "",
    ]
    if not args.skip_sizes:
        from storage.embedded_mongo import EmbeddedMongo

        server = EmbeddedMongo(Path(tempfile.mkdtemp()))
        server.start()
        try:
            sizes = asyncio.run(time_group_reads(server.uri))
        finally:
            server.stop()
        report += ["## Reading a group's members (embedded server, 20,000 other photos)", "", *sizes, ""]
    args.out.write_text("\n".join(report))
    print("\n".join(report))


if __name__ == "__main__":
    main()
