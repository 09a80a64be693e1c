"""Build random-weight CLIP models as sentence-transformers folders, offline.

Tests and benchmarks cannot download ``clip-ViT-B-32``, but they must go through the same loading code
(``SentenceTransformer(path)`` inside ``ClipEmbedder.load()``). So we build a CLIP from a config, give it
a tokenizer whose vocabulary we write ourselves (the byte-level alphabet, each byte also as an
end-of-word token, no merges, two special tokens), a CLIP image processor, and save it the way
sentence-transformers saves a multimodal ``Transformer`` module.

Random weights know nothing about meaning, but they are a deterministic function of the pixels. Two
things make that function useful for tests:

* ``initializer_factor`` must be set on the text and vision sub-configs: transformers 5 initialises each
  tower with its own sub-config, so a factor on the top-level ``CLIPConfig`` only scales the projection
  matrices, which cosine similarity ignores (every image then sits at cosine > 0.9 to every other).
* The factor trades spread against stability. At 5 the vision tower is chaotic: unrelated photos spread
  out (mean cosine 0.3) but a 0.7x JPEG-75 copy of ``rocket`` drops to 0.87 and of random noise to 0.5.
  At 2.0, with 128 px input and 16 px patches, resized+recompressed copies stay >= 0.995 and unrelated
  photos mostly fall below 0.94 (see tests/test_ml_embedding.py for the measured numbers).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

__all__ = ["build_clip_b32", "build_tiny_clip", "byte_level_vocab"]

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's printable stand-in for each of the 256 bytes, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table: dict[int, int] = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = 256 + extra
            extra += 1
    return [chr(table[b]) for b in range(256)]


def byte_level_vocab() -> dict[str, int]:
    """Every byte as a word-internal token and as a word-final ``</w>`` token, then BOS and EOS.

    With no merges, CLIP's BPE splits each word into single bytes and marks the last one ``</w>``, so
    this vocabulary covers any text.
    """
    alphabet = _bytes_to_unicode()
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab.update({f"{ch}</w>": 256 + i for i, ch in enumerate(alphabet)})
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    return vocab


def _build(
    target: Path,
    *,
    image_size: int,
    patch_size: int,
    vision: dict[str, int],
    text: dict[str, int],
    projection_dim: int,
    initializer_factor: float,
    seed: int,
) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Transformer
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    vocab = byte_level_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    text_config: dict[str, Any] = {
        **text,
        "vocab_size": len(vocab),
        "max_position_embeddings": 77,
        "bos_token_id": vocab[BOS],
        "eos_token_id": vocab[EOS],  # the text tower pools at the first EOS: ids must match the tokenizer
        "pad_token_id": vocab[EOS],
        "initializer_factor": float(initializer_factor),
    }
    vision_config: dict[str, Any] = {
        **vision,
        "image_size": image_size,
        "patch_size": patch_size,
        "initializer_factor": float(initializer_factor),
    }
    config = CLIPConfig(
        text_config=text_config,
        vision_config=vision_config,
        projection_dim=projection_dim,
        initializer_factor=float(initializer_factor),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clip-hf-") as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        module = Transformer(staging)
        SentenceTransformer(modules=[module], device="cpu").save(str(target), create_model_card=False)
    return target


def build_tiny_clip(target: Path, *, image_size: int = 128, seed: int = 0, patch_size: int = 16) -> Path:
    """A CLIP small enough to build in about a second and to embed an image in milliseconds on one core.

    Both towers: width 64, 2 layers, 4 heads; 64-d shared space. ``image_size`` defaults to 128 (not 64):
    with 16 px patches that gives 64 tokens, which keeps resized copies and unrelated photos apart better
    than 64 px input did in our measurements.
    """
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
    tower = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
    return _build(
        target,
        image_size=image_size,
        patch_size=patch_size,
        vision=tower,
        text=tower,
        projection_dim=64,
        initializer_factor=2.0,
        seed=seed,
    )


def build_clip_b32(target: Path, *, seed: int = 0) -> Path:
    """A random CLIP with ViT-B/32's shapes, so benchmarks pay the real model's compute.

    Vision: width 768, 12 layers, 12 heads, 32 px patches, 224 px input; text: width 512, 12 layers,
    8 heads; 512-d shared space. Only the token embedding table is smaller (514 byte-level tokens instead
    of 49,408 BPE tokens), which changes no matrix product that matters. About 600 MB on disk.
    """
    return _build(
        target,
        image_size=224,
        patch_size=32,
        vision={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12},
        text={"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8},
        projection_dim=512,
        initializer_factor=1.0,
        seed=seed,
    )
