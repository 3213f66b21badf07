"""One Settings object for the whole process, read from ``CONCIERGE_*`` variables.

Settings are read when ``Settings()`` is constructed (in the CLI or a test), never at
import time, so tests and tools can build several differently configured apps in
one process. Validators refuse combinations that cannot work instead of letting
them fail later inside the engine.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.db import default_database_url
from core.errors import ModelNotFoundError
from core.hardware import cpu_computes_bf16, has_nvidia_gpu
from models.registry import (
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_GENERATION_MODEL,
    MULTILINGUAL_EMBEDDING_MODEL,
    ModelRegistry,
)


class EngineKind(StrEnum):
    """Where generation runs."""

    VLLM_LOCAL = "vllm_local"
    OPENAI_REMOTE = "openai_remote"


class Environment(StrEnum):
    """Deployment stage; production refuses development conveniences."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


CONFIG_FILE_VARIABLE = "CONCIERGE_CONFIG_FILE"
DEFAULT_ENGINE_CONCURRENCY = 128
"""vLLM's own default ``max_num_seqs`` for an engine built in-process (its scheduler's)."""


class Settings(BaseSettings):
    """Effective configuration. Every field can be set as ``CONCIERGE_<FIELD>``.

    Precedence, highest first: explicit arguments (CLI flags), environment variables,
    the TOML file named by ``CONCIERGE_CONFIG_FILE`` (top-level keys are field names),
    then the defaults, which run on a 2-core laptop.
    """

    model_config = SettingsConfigDict(
        env_prefix="CONCIERGE_",
        env_file=None,
        extra="ignore",
        validate_default=True,
        env_parse_none_str="none",  # CONCIERGE_KV_CACHE_MEMORY_GIB=none unsets a value
    )

    environment: Environment = Environment.DEVELOPMENT
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    data_dir: Path = Path("var")
    training_data_dir: Path = Field(
        Path("../shared/data"),
        description="labelled data (Bitext, TweetEval) that `concierge models "
        "train-classifiers` retrains the heads from when no --data is given; serving never "
        "reads it: the default heads ship in models/classifiers/default_heads",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] | None = Field(
        None, description="json or text; default json in production, text in development"
    )

    # generation
    engine: EngineKind = EngineKind.VLLM_LOCAL
    model: str = Field(
        DEFAULT_GENERATION_MODEL,
        description="registry name, local Hugging Face folder, or hub id",
    )
    served_model_name: str | None = Field(
        None, description="name shown in /v1/models and vLLM metrics; defaults to `model`"
    )
    embedding_model: str = Field(
        "auto",
        description="registry name, folder or hub id; auto: embeddinggemma-300m (multilingual) "
        "on a host with an NVIDIA GPU or a CPU that computes bfloat16 (AMX, AVX512-BF16), "
        "all-minilm-l6-v2 on other CPUs (docs/benchmarks.md, 'Which embedder serves')",
    )

    # vllm_local
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    max_model_len: int = Field(4096, ge=64)
    kv_cache_memory_gib: float | None = Field(
        2.0,
        gt=0,
        description="memory reserved for the KV cache; unset to use gpu_memory_utilization",
    )
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    tensor_parallel_size: int = Field(1, ge=1)
    enforce_eager: bool = Field(
        False,
        description="skip torch.compile: ~35 s start-up instead of ~100 s on a 2-core CPU, "
        "about 0.9x the throughput once started (docs/benchmarks.md)",
    )
    max_num_seqs: int | None = Field(None, ge=1)
    max_num_batched_tokens: int | None = Field(None, ge=1)
    cpu_reserved_cores: int | None = Field(
        None,
        ge=0,
        description="CPU build: cores vLLM keeps free of its compute threads for the API "
        "process; unset: 0 on machines with up to 4 cores (vLLM's own 1 would halve a 2-core "
        "machine's compute, docs/benchmarks.md), else vLLM's default",
    )

    # openai_remote
    remote_urls: Annotated[list[AnyHttpUrl], NoDecode] = Field(default_factory=list)
    remote_api_key: SecretStr | None = None
    remote_timeout_s: float = Field(
        120.0, gt=0, description="deadline for one request to an upstream, streaming included"
    )
    remote_health_interval_s: float = Field(5.0, gt=0)

    # generation limits and backpressure (server/gate/admission.py)
    max_output_tokens: int = Field(
        4096,
        ge=1,
        description="largest max_tokens a chat or completion may ask for (and never more than "
        "the model's context); larger values get a 400 before the engine sees them",
    )
    engine_max_concurrency: int | None = Field(
        None,
        ge=1,
        description="generations let into the engine at once; default max_num_seqs, else "
        f"{DEFAULT_ENGINE_CONCURRENCY} per engine (vLLM's scheduler default)",
    )
    max_queued_requests: int = Field(
        64,
        ge=0,
        description="generations waiting for a slot; one more gets 503 overloaded + Retry-After",
    )
    request_deadline_s: float = Field(
        120.0,
        gt=0,
        description="time a generation may take, queue wait included; then 504 "
        "deadline_exceeded (an SSE error event once streaming) and the engine request aborted",
    )
    shutdown_grace_s: float = Field(
        10.0,
        ge=0,
        description="on SIGTERM/SIGINT: time running streams get to finish before they are cut "
        "with an error event; new and queued generations get 503 shutting_down at once",
    )

    # storage
    database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file in the data directory"
    )
    encryption_key: SecretStr | None = Field(
        None,
        description="AES-256 keys for stored customer text: `<key_id>:<base64 32 bytes>`, "
        "comma-separated, first one encrypts; overrides the key file",
    )
    encryption_key_file: Path | None = Field(
        None,
        description="key file (`<key_id>:<base64 key>` per line, first encrypts); default "
        "<data_dir>/secrets/encryption.keys, created with a new key when missing",
    )

    # embeddings and retrieval
    embedding_device: Literal["auto", "cpu", "cuda"] = "auto"
    embedding_batch_size: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="texts per embedding forward pass; none: 8 on a CPU, 64 on a GPU",
    )
    embedding_threads: int | None = Field(
        None,
        ge=1,
        description="torch threads of the server process (the embedder); none: one per core",
    )
    max_embedding_inputs: int = Field(2048, ge=1, description="inputs per /v1/embeddings request")
    retrieval_mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    retrieval_fusion: Literal["weighted", "rrf"] = Field(
        "weighted",
        description="hybrid merge: min-max weighted mix (measured best) or reciprocal rank fusion",
    )
    retrieval_lexical_weight: float = Field(
        0.3,
        ge=0,
        le=1,
        description="BM25's share in weighted fusion; 0.3 puts the right article first more "
        "often on the answer suites (demo 57% -> 65%, telco 72% -> 77%) at the same Bitext "
        "R@1 (0.731 vs 0.732); see docs/benchmarks.md",
    )
    retrieval_title_weight: float = Field(
        0.5, ge=0, lt=1, description="share of the document title in each chunk's vector"
    )
    retrieval_candidates: int = Field(50, ge=1, le=1000)
    faiss_threads: int = Field(
        1,
        ge=1,
        description="OpenMP threads per FAISS call: one query gains nothing from more, "
        "and pays heavily for them when vLLM or the embedder share the CPU",
    )
    chunk_max_chars: int = Field(900, ge=200, le=20_000)
    chunk_overlap_chars: int = Field(150, ge=0)
    index_keep_versions: int = Field(2, ge=1, description="published versions kept on disk")
    index_refresh_interval_s: float = Field(
        2.0, gt=0, description="how often to look for versions published by other processes"
    )

    # the support reply pipeline
    default_tenant: str = Field(
        "demo",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="tenant of /v1 and /admin calls that name none (X-Concierge-Tenant header)",
    )
    conversation_retention_days: float | None = Field(
        None,
        gt=0,
        description="delete conversations idle this long (and their turns, tickets, feedback, "
        "history summaries); unset keeps them",
    )
    retention_check_interval_s: float = Field(
        3600.0, gt=0, description="how often the retention purge runs"
    )
    metrics_tenants: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="tenants named in metric labels; default: the default tenant and every "
        "tenant with an installed tenant file; others are 'other'",
    )
    tenants_dir: Path | None = Field(
        None, description="tenant config files <tenant>.toml; default <data_dir>/tenants"
    )
    reply_max_tokens: int = Field(256, ge=16, le=4096, description="tokens a reply may use")
    reply_temperature: float = Field(0.3, ge=0, le=2)
    reply_frequency_penalty: float = Field(
        0.5, ge=-2, le=2, description="discourages the repetition small models fall into"
    )
    reply_presence_penalty: float = Field(0.3, ge=-2, le=2)
    reply_check: Literal["off", "mark", "fallback"] = Field(
        "fallback",
        description="each model reply checked against its evidence (docs/support.md): mark "
        "reports failures in 'grounding'; fallback also sends the answer composed instead",
    )
    reply_min_support: float = Field(
        0.5, ge=0, le=1, description="content-word share an English reply needs in its evidence"
    )
    max_message_chars: int = Field(4000, ge=100, le=100_000)
    memory_turns: int = Field(4, ge=0, le=50, description="recent exchanges kept verbatim")
    memory_summary_chars: int = Field(
        1500, ge=0, le=20_000, description="rolling summary of older exchanges"
    )
    kb_passages: int = Field(3, ge=1, le=20, description="KB passages offered to the model")
    prompt_sentences: int = Field(
        6, ge=0, le=100, description="passage sentences the prompt quotes; 0: whole passages"
    )
    grounding_min_similarity: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="cosine similarity a passage needs to count as grounding; default: the "
        "embedding model's calibrated value (0.35 for all-MiniLM-L6-v2)",
    )
    rerank: Literal["off", "llm"] = Field(
        "off",
        description="llm: the generation model judges which of rerank_candidates passages "
        "answer the message; off by default: on a CPU it costs more than it gains "
        "(docs/benchmarks.md, LLM reranker)",
    )
    rerank_candidates: int = Field(
        8, ge=1, le=50, description="passages judged per reply when rerank=llm"
    )
    rerank_timeout_s: float = Field(
        5.0,
        gt=0,
        description="time the judge may take, admission wait included; after it the reply "
        "goes on with the retrieval order",
    )
    history_hits: int = Field(3, ge=0, le=20, description="customer-history entries per reply")
    profile_fact_tokens: int = Field(
        200, ge=32, le=4000, description="tokens of the customer's record a prompt may show"
    )
    reply_as_of: dt.datetime | None = Field(
        None,
        description="fixes 'today' for every reply (tests, replays of past conversations); "
        "a request's as_of overrides it; default: the clock",
    )

    # access control
    auth: Literal["keys", "off"] | None = Field(
        None,
        description="keys: every route but the probes needs an API key (`concierge keys "
        "create`); off: open, allowed only in development on a loopback address. Default: "
        "off in development on loopback, keys everywhere else",
    )
    api_docs_public: bool | None = Field(
        None,
        description="serve /docs, /redoc and /openapi.json without a key; default: only when "
        "keys are not required (development on loopback)",
    )
    rate_limit_per_minute: int = Field(
        600, ge=0, description="requests per minute per API key (a key may set its own); 0: none"
    )
    rate_limit_burst: int = Field(
        60, ge=1, description="requests a key may send at once before the per-minute rate applies"
    )
    api_key_cache_s: float = Field(
        5.0,
        ge=0,
        description="how long a verified key is trusted before the database is asked again; "
        "a revocation takes effect within this time",
    )

    # HTTP edge
    max_request_bytes: int = Field(1_048_576, ge=1024)
    max_header_bytes: int = Field(65_536, ge=1024, description="request line + headers; more: 431")
    header_timeout_s: float = Field(30.0, gt=0, description="time to send a whole head; then 408")
    max_upload_bytes: int = Field(
        33_554_432, ge=1024, description="body limit of the KB bulk upload route"
    )
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="webhook hosts allowed although not public (a help desk on the private net)",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Add the optional TOML file below the environment."""
        sources = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_VARIABLE)
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise ValueError(f"{CONFIG_FILE_VARIABLE}={config_file} is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator(
        "remote_urls",
        "cors_allow_origins",
        "metrics_tenants",
        "webhook_allowed_hosts",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        """Accept ``a,b`` in an environment variable as well as a list."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _resolve_auto_embedder(self) -> Settings:
        """``auto`` becomes a model name here, once, so every component sees the same one."""
        if self.embedding_model == "auto":
            gpu = self.embedding_device == "cuda" or (
                self.embedding_device == "auto" and has_nvidia_gpu()
            )
            # on other CPUs EmbeddingGemma runs in float32, past the analysis budget
            fast_enough = gpu or cpu_computes_bf16()
            self.embedding_model = (
                MULTILINGUAL_EMBEDDING_MODEL if fast_enough else DEFAULT_EMBEDDING_MODEL
            )
        return self

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.chunk_overlap_chars >= self.chunk_max_chars:
            raise ValueError("chunk_overlap_chars must be smaller than chunk_max_chars")
        if self.engine is EngineKind.OPENAI_REMOTE and not self.remote_urls:
            raise ValueError("engine=openai_remote needs CONCIERGE_REMOTE_URLS (comma-separated)")
        if self.auth == "off" and not self.may_run_open:
            raise ValueError(
                "CONCIERGE_AUTH=off is allowed only in development on a loopback address "
                f"(environment={self.environment.value}, host={self.host}); create API keys "
                "with `concierge keys create` and set CONCIERGE_AUTH=keys"
            )
        public = self.host in {"0.0.0.0", "::"}
        if self.environment is Environment.PRODUCTION and public and "*" in self.cors_allow_origins:
            raise ValueError("CORS '*' is refused in production on a public interface")
        return self

    @property
    def effective_database_url(self) -> str:
        """The configured database URL, or the embedded SQLite file."""
        if self.database_url is not None and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        return default_database_url(self.data_dir)

    @property
    def may_run_open(self) -> bool:
        """Development on a loopback address: the only place a server may run without keys."""
        return self.environment is Environment.DEVELOPMENT and is_loopback(self.host)

    @property
    def keys_required(self) -> bool:
        """Whether callers must present API keys (see ``auth``)."""
        if self.auth is not None:
            return self.auth == "keys"
        return not self.may_run_open

    @property
    def docs_public(self) -> bool:
        """Whether the API documentation answers without a key (see ``api_docs_public``)."""
        if self.api_docs_public is not None:
            return self.api_docs_public
        return not self.keys_required

    @property
    def effective_encryption_key_file(self) -> Path:
        """The configured key file, or ``secrets/encryption.keys`` in the data directory."""
        if self.encryption_key_file is not None:
            return self.encryption_key_file
        return self.data_dir / "secrets" / "encryption.keys"

    @property
    def effective_engine_max_concurrency(self) -> int:
        """Generations let into the engine at once: as set, else what the engine schedules."""
        if self.engine_max_concurrency is not None:
            return self.engine_max_concurrency
        if self.engine is EngineKind.OPENAI_REMOTE:
            return DEFAULT_ENGINE_CONCURRENCY * max(1, len(self.remote_urls))
        return self.max_num_seqs or DEFAULT_ENGINE_CONCURRENCY

    @property
    def effective_log_format(self) -> Literal["json", "text"]:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.environment is Environment.PRODUCTION else "text"

    @property
    def effective_tenants_dir(self) -> Path:
        return self.tenants_dir if self.tenants_dir is not None else self.data_dir / "tenants"

    @property
    def model_display_name(self) -> str:
        """The name clients use for the generation model."""
        if self.served_model_name:
            return self.served_model_name
        try:  # the same name the engine factory serves under
            return ModelRegistry().resolve(self.model).name
        except ModelNotFoundError:
            return self.model

    def masked(self) -> dict[str, Any]:
        """Effective settings as plain data, with secrets replaced by '***'."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump(mode="json").items():
            field_value = getattr(self, name)
            if isinstance(field_value, SecretStr):
                shown[name] = "***" if field_value.get_secret_value() else ""
            elif name == "remote_urls":
                shown[name] = [_without_credentials(str(url)) for url in field_value]
            else:
                shown[name] = value
        return shown


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _without_credentials(url: str) -> str:
    """``http://user:pass@host/`` -> ``http://***@host/``: URLs may carry upstream secrets."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
