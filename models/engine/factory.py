"""Build the configured ``EngineClient`` from settings (the only place that chooses)."""

from __future__ import annotations

from models.engine.base import EngineClient
from models.engine.openai_remote import OpenAIRemoteEngine, RemoteConfig
from models.engine.vllm_local import VllmLocalConfig, VllmLocalEngine
from models.registry import ModelRegistry, ModelTask
from server.config import EngineKind, Settings


def build_engine(settings: Settings, registry: ModelRegistry | None = None) -> EngineClient:
    """A not-yet-started engine; ``start()`` does the heavy loading."""
    if settings.engine is EngineKind.OPENAI_REMOTE:
        secret = settings.remote_api_key
        return OpenAIRemoteEngine(
            RemoteConfig(
                base_urls=tuple(str(url) for url in settings.remote_urls),
                served_model_name=settings.served_model_name,
                api_key=secret.get_secret_value() if secret else None,
                request_timeout_s=settings.remote_timeout_s,
                health_interval_s=settings.remote_health_interval_s,
            )
        )
    spec = (registry or ModelRegistry()).resolve(settings.model, ModelTask.GENERATE)
    kv_bytes = (
        int(settings.kv_cache_memory_gib * (1 << 30))
        if settings.kv_cache_memory_gib is not None
        else None
    )
    return VllmLocalEngine(
        VllmLocalConfig(
            model=spec,
            data_dir=settings.data_dir,
            served_model_name=settings.served_model_name or spec.name,
            dtype=settings.dtype,
            max_model_len=settings.max_model_len,
            kv_cache_memory_bytes=kv_bytes,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            tensor_parallel_size=settings.tensor_parallel_size,
            enforce_eager=settings.enforce_eager,
            max_num_seqs=settings.max_num_seqs,
            max_num_batched_tokens=settings.max_num_batched_tokens,
            cpu_reserved_cores=settings.cpu_reserved_cores,
        )
    )
