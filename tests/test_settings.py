from __future__ import annotations

import os
import subprocess
import sys

import pytest

from photoduel.settings import Settings, SettingsError, load_settings


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PHOTODUEL_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST")  # honoured only with PHOTODUEL_ENV=dev set explicitly
    settings = load_settings()
    assert settings.port == 8000
    assert settings.firebase_project_id == "demo-photoduel"
    assert settings.clip_model == "clip-ViT-B-32"
    assert settings.max_upload_bytes == 25 * 1024 * 1024
    assert settings.mongodb_uri is None


def test_environment_is_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTODUEL_PORT", "9123")
    monkeypatch.setenv("PHOTODUEL_MILVUS_URI", "http://milvus:19530")
    monkeypatch.setenv("PHOTODUEL_MONGODB_URI", "   ")
    settings = load_settings()
    assert settings.port == 9123
    assert settings.resolved_milvus_uri == "http://milvus:19530"
    assert settings.mongodb_uri is None  # blank means unset, not an empty URI


@pytest.mark.parametrize(
    ("name", "value", "mentions"),
    [
        ("PHOTODUEL_PORT", "99999", "PHOTODUEL_PORT"),
        ("PHOTODUEL_PORT", "eighty", "PHOTODUEL_PORT"),
        ("PHOTODUEL_ENV", "staging", "PHOTODUEL_ENV"),
        ("PHOTODUEL_MAX_UPLOAD_BYTES", "-1", "PHOTODUEL_MAX_UPLOAD_BYTES"),
        ("PHOTODUEL_NEAR_DUPLICATE_COSINE", "1.5", "PHOTODUEL_NEAR_DUPLICATE_COSINE"),
    ],
)
def test_bad_values_fail_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, mentions: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert mentions in str(info.value)
    assert repr(value) in str(info.value)


def test_production_refuses_the_auth_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099")
    monkeypatch.setenv("PHOTODUEL_ENV", "prod")
    with pytest.raises(SettingsError, match="FIREBASE_AUTH_EMULATOR_HOST"):
        load_settings()


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(Exception):
        settings.port = 1  # type: ignore[misc]


def test_cli_reports_bad_configuration_and_exits_2() -> None:
    env = {**os.environ, "PHOTODUEL_PORT": "not-a-port"}
    result = subprocess.run(
        [sys.executable, "-m", "photoduel.cli", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "PHOTODUEL_PORT" in result.stderr


def test_the_projectors_straggler_window_must_outlast_the_database_deadline() -> None:
    with pytest.raises(SettingsError, match="PHOTODUEL_PROJECTOR_STRAGGLER_SECONDS"):
        load_settings(projector_straggler_seconds=5.0, mongodb_timeout_seconds=10.0)
    assert load_settings(projector_straggler_seconds=5.0, mongodb_timeout_seconds=2.0).projector_straggler_seconds == 5


def test_a_short_duel_secret_is_refused_without_showing_it() -> None:
    with pytest.raises(SettingsError, match="PHOTODUEL_DUEL_SECRET") as refused:
        load_settings(duel_secret="tooshort-secret")
    assert "tooshort-secret" not in str(refused.value)
    assert load_settings(duel_secret="").duel_secret is None  # blank is unset: generated in the data dir
