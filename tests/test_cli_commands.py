"""The maintenance commands as operators run them: child processes on the same settings."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pymongo import MongoClient

from photoduel.settings import Settings
from tests.servers import settings_env
from tests.uploads import generated_photo, jpeg_bytes, skimage_photo


def run_cli(settings: Settings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "photoduel.cli", *args], env=settings_env(settings),
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "shoot"
    (folder / "day2").mkdir(parents=True)
    for i, name in enumerate(("coffee", "chelsea", "rocket")):
        (folder / f"{name}.jpg").write_bytes(jpeg_bytes(skimage_photo(name)))
        (folder / "day2" / f"gen{i}.jpg").write_bytes(jpeg_bytes(generated_photo(40 + i)))
    (folder / "notes.jpg").write_bytes(b"not really a jpeg")
    return folder


def test_import_is_resumable_and_reindex_moves_to_the_new_model(
    make_settings: Callable[..., Settings], photo_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = make_settings(log_level="WARNING")
    first = run_cli(settings, "import", str(photo_dir), "--owner", "importer", "--process")
    assert first.returncode == 1, first.stderr  # one file was not an image: reported, the rest imported
    assert "imported 6, skipped 0 already there, rejected 1" in first.stdout
    again = run_cli(settings, "import", str(photo_dir), "--owner", "importer")
    assert "imported 0, skipped 6 already there, rejected 1" in again.stdout

    db = MongoClient(settings.mongodb_uri)[settings.mongodb_database]
    assert db.photos.count_documents({"owner": "importer", "status": "READY"}) == 6
    old_collection = db.photos.find_one({})["vector_collection"]

    from tests.tiny_clip import build_tiny_clip

    other_model = build_tiny_clip(tmp_path_factory.mktemp("clip-b") / "other-clip", seed=1)
    moved = settings.model_copy(update={"clip_model": str(other_model)})
    result = run_cli(moved, "reindex")
    assert result.returncode == 0, result.stderr
    assert "reindexed 6 photos" in result.stdout
    docs = list(db.photos.find({}))
    assert {d["vector_collection"] for d in docs} != {old_collection}
    assert len({d["vector_collection"] for d in docs}) == 1
    assert all(len(d["neighbours"]) == 5 for d in docs)  # every other photo, from the new vectors
