"""Settings come from CONCIERGE_* variables, refuse impossible combinations, mask secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from server import config
from server.config import EngineKind, Settings


def test_defaults_run_on_a_laptop(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CONCIERGE_"):
            monkeypatch.delenv(key)
    settings = Settings()
    assert settings.engine is EngineKind.VLLM_LOCAL
    assert settings.host == "127.0.0.1" and settings.port == 8000
    assert settings.model == "smollm2-135m-instruct"
    assert settings.enforce_eager is False  # serving defaults to the faster compiled mode
    assert settings.kv_cache_memory_gib == 2.0


def test_the_embedder_is_multilingual_where_it_is_fast_enough_and_minilm_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``auto`` resolves once, in the settings, so every component sees the same model."""
    monkeypatch.delenv("CONCIERGE_EMBEDDING_MODEL", raising=False)
    monkeypatch.setattr(config, "has_nvidia_gpu", lambda: False)
    monkeypatch.setattr(config, "cpu_computes_bf16", lambda: True)
    assert Settings().embedding_model == "embeddinggemma-300m"
    monkeypatch.setattr(config, "cpu_computes_bf16", lambda: False)
    assert Settings().embedding_model == "all-minilm-l6-v2"
    assert Settings(embedding_device="cuda").embedding_model == "embeddinggemma-300m"
    monkeypatch.setattr(config, "has_nvidia_gpu", lambda: True)
    assert Settings().embedding_model == "embeddinggemma-300m"
    assert Settings(embedding_device="cpu").embedding_model == "all-minilm-l6-v2"
    assert Settings(embedding_model="all-minilm-l6-v2").embedding_model == "all-minilm-l6-v2"


def test_environment_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCIERGE_ENGINE", "openai_remote")
    monkeypatch.setenv("CONCIERGE_REMOTE_URLS", "http://a:8000, http://b:8000/v1")
    monkeypatch.setenv("CONCIERGE_PORT", "9000")
    monkeypatch.setenv("CONCIERGE_ENFORCE_EAGER", "true")
    settings = Settings()
    assert settings.engine is EngineKind.OPENAI_REMOTE
    assert [str(url) for url in settings.remote_urls] == ["http://a:8000/", "http://b:8000/v1"]
    assert settings.port == 9000
    assert settings.enforce_eager is True


def test_remote_engine_without_urls_is_refused() -> None:
    with pytest.raises(ValidationError, match="CONCIERGE_REMOTE_URLS"):
        Settings(engine=EngineKind.OPENAI_REMOTE, remote_urls=[])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("port", 0),
        ("max_model_len", 1),
        ("gpu_memory_utilization", 1.5),
        ("max_request_bytes", 10),
        ("kv_cache_memory_gib", 0),
        ("remote_urls", "not a url"),
    ],
)
def test_out_of_range_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: value})


def test_public_production_server_refuses_wildcard_cors() -> None:
    with pytest.raises(ValidationError, match="CORS"):
        Settings(environment="production", host="0.0.0.0", cors_allow_origins=["*"])


def test_secrets_are_masked() -> None:
    settings = Settings(
        engine=EngineKind.OPENAI_REMOTE,
        remote_urls=["http://a:1"],
        remote_api_key="sk-very-secret",
    )
    shown = settings.masked()
    assert shown["remote_api_key"] == "***"
    assert "sk-very-secret" not in repr(shown)


def test_a_toml_config_file_sits_below_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "concierge.toml"
    config.write_text('port = 8123\nmax_model_len = 1024\nremote_urls = ["http://x:1"]\n')
    monkeypatch.setenv("CONCIERGE_CONFIG_FILE", str(config))
    monkeypatch.setenv("CONCIERGE_MAX_MODEL_LEN", "512")
    settings = Settings()
    assert settings.port == 8123
    assert settings.max_model_len == 512  # the environment wins over the file
    assert [str(url) for url in settings.remote_urls] == ["http://x:1/"]


def test_a_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCIERGE_CONFIG_FILE", "/no/such/file.toml")
    with pytest.raises(ValueError, match="is not a file"):
        Settings()


def test_none_unsets_an_optional_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCIERGE_KV_CACHE_MEMORY_GIB", "none")
    assert Settings().kv_cache_memory_gib is None


def test_credentials_in_upstream_urls_are_masked() -> None:
    settings = Settings(engine=EngineKind.OPENAI_REMOTE, remote_urls=["http://bob:hunter2@up:8000"])
    assert settings.masked()["remote_urls"] == ["http://***@up:8000/"]


def test_display_name_matches_what_the_engine_serves(tmp_path: Path) -> None:
    assert Settings(model="Qwen/Qwen2.5-7B-Instruct").model_display_name == (
        "Qwen/Qwen2.5-7B-Instruct"
    )
    assert Settings(model="smollm2-135m-instruct").model_display_name == "smollm2-135m-instruct"
    assert Settings(served_model_name="support-bot").model_display_name == "support-bot"


def test_keys_are_off_only_in_development_on_loopback() -> None:
    assert not Settings().keys_required  # development on 127.0.0.1
    assert not Settings(host="::1").keys_required
    assert Settings(host="0.0.0.0").keys_required
    assert Settings(environment="production", host="127.0.0.1").keys_required
    assert Settings(auth="keys").keys_required
    for refused in (
        {"auth": "off", "host": "0.0.0.0"},
        {"auth": "off", "environment": "production"},
    ):
        with pytest.raises(ValidationError, match="CONCIERGE_AUTH=off"):
            Settings(**refused)


def test_the_grounding_floor_is_the_embedders_own() -> None:
    """Cosine scales differ by model: each registered embedder carries its calibrated floor,
    and the setting overrides it."""
    from server.lifespan import grounding_similarity

    assert grounding_similarity(Settings(embedding_model="all-minilm-l6-v2")) == 0.35
    assert grounding_similarity(Settings(embedding_model="embeddinggemma-300m")) == 0.30
    configured = Settings(embedding_model="embeddinggemma-300m", grounding_min_similarity=0.5)
    assert grounding_similarity(configured) == 0.5
