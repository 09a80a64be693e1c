"""ClipEmbedder through the real sentence-transformers loader, on a tiny random CLIP built offline.

Also measures what the near-duplicate threshold sees with that model: a photo against its 0.7x, JPEG-75
copy, and unrelated photos against each other. Measured with seed 0 (run with -s to print them):
copies >= 0.9959 (random-noise image: 0.97); the unrelated set below, max about 0.93. Known limit of a
random model: two mostly-black images with faint specks (skimage ``hubble_deep_field`` and ``cell``)
score 0.994, so they are not in the unrelated set.
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from ml.embedder import ClipEmbedder, ModelUnavailable, model_slug
from tests.tiny_clip import build_tiny_clip

NEAR_DUPLICATE_COSINE = 0.95  # the settings default (PHOTODUEL_NEAR_DUPLICATE_COSINE)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "brick", "grass", "immunohistochemistry")


@pytest.fixture(scope="module")
def tiny_clip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture(scope="module")
def embedder(tiny_clip_path: Path) -> ClipEmbedder:
    model = ClipEmbedder(str(tiny_clip_path), device="auto", batch_size=16)
    model.load()
    return model


def generated_images() -> dict[str, Image.Image]:
    yy, xx = np.mgrid[0:256, 0:256]
    return {
        "gradient": Image.fromarray(np.tile(np.linspace(0, 255, 256, dtype=np.uint8)[None, :, None], (256, 1, 3))),
        "checker": Image.fromarray(((xx // 32 + yy // 32) % 2 * 255).astype(np.uint8)).convert("RGB"),
        "rings": Image.fromarray((127 + 127 * np.sin(np.hypot(yy - 128, xx - 128) / 6)).astype(np.uint8)).convert(
            "RGB"
        ),
        "red": Image.new("RGB", (200, 150), (200, 30, 30)),
    }


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


def resized_recompressed(img: Image.Image, scale: float = 0.7, quality: int = 75) -> Image.Image:
    small = img.resize((int(img.width * scale), int(img.height * scale)), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def test_load_goes_through_sentence_transformers(tiny_clip_path: Path) -> None:
    model = ClipEmbedder(str(tiny_clip_path))
    assert not model.loaded
    started = time.perf_counter()
    model.load()
    elapsed = time.perf_counter() - started
    print(f"\nClipEmbedder.load() of the tiny CLIP: {elapsed:.2f} s")
    assert model.loaded and model.device == "cpu"
    assert model.dim == 64
    model.load()  # idempotent


def test_model_id_is_a_milvus_safe_slug(embedder: ClipEmbedder) -> None:
    assert re.fullmatch(r"[a-z][a-z0-9_]*", embedder.model_id)
    assert embedder.model_id == "tiny_clip_64"
    assert model_slug("clip-ViT-B-32", 512) == "clip_vit_b_32_512"
    assert model_slug("sentence-transformers/clip-ViT-B-32", 512) == "clip_vit_b_32_512"
    assert model_slug("/models/2024 CLIP (large)/", 768) == "m_2024_clip_large_768"
    assert len(model_slug("x" * 300, 512)) <= 60


def test_image_embeddings_are_unit_float32(embedder: ClipEmbedder) -> None:
    images = [photo("astronaut"), photo("coffee"), Image.fromarray(skdata.camera())]  # camera is mode "L"
    vectors = embedder.embed_images(images)
    assert vectors.shape == (3, embedder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    again = embedder.embed_images([photo("astronaut")])
    np.testing.assert_allclose(again[0], vectors[0], atol=1e-5)
    grey_as_rgb = embedder.embed_images([Image.fromarray(skdata.camera()).convert("RGB")])
    np.testing.assert_allclose(grey_as_rgb[0], vectors[2], atol=1e-5)
    assert embedder.embed_images([]).shape == (0, embedder.dim)


def test_batching_does_not_change_results(tiny_clip_path: Path, embedder: ClipEmbedder) -> None:
    small_batches = ClipEmbedder(str(tiny_clip_path), batch_size=3)
    small_batches.load()
    images = [photo(n) for n in PHOTOS[:7]]
    np.testing.assert_allclose(small_batches.embed_images(images), embedder.embed_images(images), atol=1e-4)
    texts = [f"a photo of a {w}." for w in ("cat", "dog", "beach", "car", "bridge")]
    np.testing.assert_allclose(small_batches.embed_texts(texts), embedder.embed_texts(texts), atol=1e-4)


def test_text_embeddings(embedder: ClipEmbedder) -> None:
    vectors = embedder.embed_texts(["a photo of a cat.", "a photo of a dog.", "a photo of a cat.", "x" * 500])
    assert vectors.shape == (4, embedder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    assert float(vectors[0] @ vectors[1]) < 0.999  # different prompts, different vectors
    assert embedder.embed_texts([]).shape == (0, embedder.dim)
    with pytest.raises(TypeError):
        embedder.embed_texts("a photo of a cat.")  # type: ignore[arg-type]


def test_near_duplicates_and_unrelated_photos_fall_on_either_side_of_the_threshold(embedder: ClipEmbedder) -> None:
    images = {name: photo(name) for name in PHOTOS} | generated_images()
    names = list(images)
    originals = embedder.embed_images(list(images.values()))
    copies = embedder.embed_images([resized_recompressed(img) for img in images.values()])

    near_dup = (originals * copies).sum(axis=1)
    similarity = originals @ originals.T
    upper = np.triu_indices(len(names), 1)
    unrelated = similarity[upper]
    order = np.argsort(-unrelated)
    print("\nnear-duplicate (0.7x + JPEG 75) cosines:")
    print("  " + ", ".join(f"{n} {c:.4f}" for n, c in zip(names, near_dup, strict=True)))
    print(f"unrelated pairs: mean {unrelated.mean():.3f}, max {unrelated.max():.3f}; highest:")
    print("  " + ", ".join(f"{names[upper[0][i]]}/{names[upper[1][i]]} {unrelated[i]:.3f}" for i in order[:6]))

    assert near_dup.min() >= 0.99
    assert unrelated.max() < NEAR_DUPLICATE_COSINE
    assert unrelated.mean() < 0.6


def test_big_photos_embed_like_their_screen_size_copy(embedder: ClipEmbedder) -> None:
    # Large inputs are reduced before CLIP's processor; the vector must not notice.
    big = photo("coffee").resize((3600, 2400), Image.Resampling.BICUBIC)
    screen = big.resize((900, 600), Image.Resampling.LANCZOS)
    vectors = embedder.embed_images([big, screen])
    assert float(vectors[0] @ vectors[1]) > 0.995


def test_missing_folder_fails_fast_with_a_fix(tmp_path: Path) -> None:
    model = ClipEmbedder(str(tmp_path / "no-such-model"))
    started = time.perf_counter()
    with pytest.raises(ModelUnavailable) as info:
        model.load()
    assert time.perf_counter() - started < 1.0  # no network round trips for a path
    assert "PHOTODUEL_CLIP_MODEL" in str(info.value) and "clip-ViT-B-32" in str(info.value)
    assert not model.loaded


def test_folder_that_is_not_a_model_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("not a model")
    with pytest.raises(ModelUnavailable) as info:
        ClipEmbedder(str(tmp_path)).load()
    assert "PHOTODUEL_CLIP_MODEL" in str(info.value)


def test_a_text_only_sentence_model_is_refused_at_load(tmp_path: Path) -> None:
    # A real (tiny, random) BERT sentence model: loads fine in sentence-transformers, cannot embed images.
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    raw, target = tmp_path / "raw", tmp_path / "text-only"
    raw.mkdir()
    (raw / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "."]))
    BertTokenizerFast(vocab_file=str(raw / "vocab.txt")).save_pretrained(raw)
    config = BertConfig(vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(config).save_pretrained(raw)
    module = Transformer(str(raw))
    SentenceTransformer(modules=[module, Pooling(16)], device="cpu").save(str(target), create_model_card=False)

    model = ClipEmbedder(str(target))
    with pytest.raises(ModelUnavailable, match="is it a CLIP model"):
        model.load()
    assert not model.loaded


def test_using_the_model_before_load_says_so(tiny_clip_path: Path) -> None:
    model = ClipEmbedder(str(tiny_clip_path))
    with pytest.raises(ModelUnavailable, match="load"):
        model.embed_texts(["a cat"])
    with pytest.raises(ModelUnavailable):
        _ = model.dim
